"""DVC stage `validate`: reads params.yaml and runs :func:`oncopersistnet.stages.validate.run`."""

from oncopersistnet.stages import validate
from oncopersistnet.stages.common import run_stage

if __name__ == "__main__":
    run_stage("validate", validate.run)
