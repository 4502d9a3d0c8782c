"""DVC stage `register`: reads params.yaml and runs :func:`oncopersistnet.stages.register.run`."""

from oncopersistnet.stages import register
from oncopersistnet.stages.common import run_stage

if __name__ == "__main__":
    run_stage("register", register.run)
