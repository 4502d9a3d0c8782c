"""OncoPersistNet: classify single cancer cells as drug-tolerant persisters.

Importing the package has no side effects: no tracking URI is set, no folder is
made and no logging is configured. Entry points (``oncopersistnet.cli`` and the
scripts under ``pipelines/``) do that.
"""

from oncopersistnet.errors import OncoPersistNetError

__version__ = "0.1.0"

PERSISTER = "persister"
NON_PERSISTER = "non-persister"
LABELS = (NON_PERSISTER, PERSISTER)

__all__ = ["LABELS", "NON_PERSISTER", "PERSISTER", "OncoPersistNetError", "__version__"]
