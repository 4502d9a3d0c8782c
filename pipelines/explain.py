"""DVC stage `explain`: reads params.yaml and runs :func:`oncopersistnet.stages.explain.run`."""

from oncopersistnet.stages import explain
from oncopersistnet.stages.common import run_stage

if __name__ == "__main__":
    run_stage("explain", explain.run)
