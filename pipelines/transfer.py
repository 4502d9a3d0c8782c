"""DVC stage `transfer`: reads params.yaml and runs :func:`oncopersistnet.stages.transfer.run`."""

from oncopersistnet.stages import transfer
from oncopersistnet.stages.common import run_stage

if __name__ == "__main__":
    run_stage("transfer", transfer.run)
