"""DVC stage `evaluate`: reads params.yaml and runs :func:`oncopersistnet.stages.evaluate.run`."""

from oncopersistnet.stages import evaluate
from oncopersistnet.stages.common import run_stage

if __name__ == "__main__":
    run_stage("evaluate", evaluate.run)
