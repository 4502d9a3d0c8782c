"""OncoPersistNet: classify single cancer cells as drug-tolerant persisters.

Importing the package has no side effects: no tracking URI is set, no folder is
made and no logging is configured. Entry points (``oncopersistnet.cli`` and the
scripts under ``pipelines/``) do that. The class names (``PERSISTER``,
``NON_PERSISTER``, ``LABELS``) live in :mod:`oncopersistnet.data.labels`.

The scanpy-style API, ``oncopersistnet.annotate(adata)`` and
``oncopersistnet.pl.calls(adata)``, is exported lazily (PEP 562 ``__getattr__``):
it needs anndata, onnxruntime and matplotlib, which ``import oncopersistnet`` (and
so every command's start-up) should not pay for.
"""

from typing import TYPE_CHECKING, Any

from oncopersistnet.errors import OncoPersistNetError

if TYPE_CHECKING:
    from oncopersistnet import pl
    from oncopersistnet.api import annotate

__version__ = "0.1.0"

__all__ = ["OncoPersistNetError", "__version__", "annotate", "pl"]


def __getattr__(name: str) -> Any:
    """``annotate`` and ``pl`` on first use (re-exports of this package's own modules)."""
    if name == "annotate":
        from oncopersistnet.api import annotate

        return annotate
    if name == "pl":
        import oncopersistnet.pl  # sets the attribute: no second call of this function

        return oncopersistnet.pl
    raise AttributeError(f"module 'oncopersistnet' has no attribute {name!r}")
