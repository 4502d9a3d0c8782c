"""One function per DVC stage: read inputs from paths, call the library, write outputs.

The scripts in ``pipelines/`` only load params.yaml and call these; the library
modules below them know nothing about files or DVC.
"""
