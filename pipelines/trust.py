"""DVC stage `trust`: reads params.yaml and runs :func:`oncopersistnet.stages.trust.run`."""

from oncopersistnet.stages import trust
from oncopersistnet.stages.common import run_stage

if __name__ == "__main__":
    run_stage("trust", trust.run)
