"""Getting cells in: the simulator, readers for users' files in every format, labels, the cell record.

Import order (no cycles): ``labels`` and ``hdf5`` need nothing of this package;
``cells`` needs ``labels``; ``readers`` needs ``hdf5``; ``load`` needs ``readers`` and ``labels``.
Nothing is re-exported here: importing the cell record must not load the readers and the
simulator, and ``dvc.yaml`` lists for each stage the modules it really imports.
"""
