"""DVC stage `ingest`: reads params.yaml and runs :func:`oncopersistnet.stages.ingest.run`."""

from oncopersistnet.stages import ingest
from oncopersistnet.stages.common import run_stage

if __name__ == "__main__":
    run_stage("ingest", ingest.run)
