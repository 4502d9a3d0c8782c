"""DVC stage `preprocess`: reads params.yaml and runs :func:`oncopersistnet.stages.preprocess.run`."""

from oncopersistnet.stages import preprocess
from oncopersistnet.stages.common import run_stage

if __name__ == "__main__":
    run_stage("preprocess", preprocess.run)
