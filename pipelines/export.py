"""DVC stage `export`: reads params.yaml and runs :func:`oncopersistnet.stages.export.run`."""

from oncopersistnet.stages import export
from oncopersistnet.stages.common import run_stage

if __name__ == "__main__":
    run_stage("export", export.run)
