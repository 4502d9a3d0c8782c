"""DVC stage `train`: reads params.yaml and runs :func:`oncopersistnet.stages.train.run`."""

from oncopersistnet.stages import train
from oncopersistnet.stages.common import run_stage

if __name__ == "__main__":
    run_stage("train", train.run)
