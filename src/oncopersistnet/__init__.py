"""OncoPersistNet: classify single cancer cells as drug-tolerant persisters.

Importing the package has no side effects: no tracking URI is set, no folder is
made and no logging is configured. Entry points (``oncopersistnet.cli`` and the
scripts under ``pipelines/``) do that. The class names (``PERSISTER``,
``NON_PERSISTER``, ``LABELS``) live in :mod:`oncopersistnet.data.labels`.
"""

from oncopersistnet.errors import OncoPersistNetError

__version__ = "0.1.0"

__all__ = ["OncoPersistNetError", "__version__"]
