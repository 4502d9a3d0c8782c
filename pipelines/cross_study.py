"""DVC stage `cross_study`: reads params.yaml and runs :func:`oncopersistnet.stages.cross_study.run`."""

from oncopersistnet.stages import cross_study
from oncopersistnet.stages.common import run_stage

if __name__ == "__main__":
    run_stage("cross_study", cross_study.run)
