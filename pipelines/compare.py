"""DVC stage `compare`: reads params.yaml and runs :func:`oncopersistnet.stages.compare.run`."""

from oncopersistnet.stages import compare
from oncopersistnet.stages.common import run_stage

if __name__ == "__main__":
    run_stage("compare", compare.run)
