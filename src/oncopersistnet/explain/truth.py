"""Score gene rankings against the truth the simulator planted.

On simulated data the right answer is known: :func:`oncopersistnet.data.simulate.planted_programme`
gives every gene's planted log fold change, the named programme and the
diffuse background shifts alike. A ranking is judged on the genes the model
reads (the selected genes): a planted gene that gene selection dropped cannot
be found by any attribution method, and counting it would blame the explainer
for the preprocessing.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from scipy import stats
from sklearn.metrics import roc_auc_score

from oncopersistnet.data.simulate import PROLIFERATION_GENES

#: A gene counts as planted when its |log fold change| (natural log, at full
#: programme activity, after ``simulate.effect_size``) exceeds this: about a
#: 1.6-fold shift. Named programme genes are all far above it (>= 0.6 x effect size);
#: of the diffuse background shifts (N(0, 0.5) x effect size) about two thirds are.
PLANTED_LFC_CUT = 0.5


def planted_recovery(
    table: pd.DataFrame,
    planted: pd.Series,
    top: dict[str, list[str]],
    *,
    k: int,
    cut: float = PLANTED_LFC_CUT,
) -> dict[str, Any]:
    """Precision@k of the global ranking against planted genes, beside the chance rate.

    ``chance_rate`` = planted-and-read genes / genes read: the expected
    precision of ``k`` genes picked at random from what the model reads.
    ``auroc``: how well mean |attribution| separates planted from unplanted
    genes over the whole ranking (0.5 = chance), so the verdict does not hang
    on the choice of ``k``. ``direction_agreement``: among planted genes in the
    top ``k``, the share the model reads the planted way round (higher
    expression -> persister for an up-shifted gene).
    """
    universe = table.index
    lfc = planted.reindex(universe).fillna(0.0).astype(float)
    is_planted = (lfc.abs() > cut).to_numpy()
    chosen = top["global"][:k]
    hits = [g for g in chosen if abs(lfc[g]) > cut]
    n_read_planted = int(is_planted.sum())
    agree = [bool(np.sign(table.loc[g, "mean_path_gradient"]) == np.sign(lfc[g])) for g in hits]
    both_classes = 0 < n_read_planted < len(universe)
    return {
        "lfc_cut": cut,
        "k": len(chosen),
        "precision_at_k": len(hits) / len(chosen) if chosen else 0.0,
        "chance_rate": n_read_planted / len(universe) if len(universe) else 0.0,
        "recall_at_k": len(hits) / n_read_planted if n_read_planted else 0.0,
        "auroc": float(roc_auc_score(is_planted, table["mean_abs_attribution"]))
        if both_classes
        else float("nan"),
        "direction_agreement": float(np.mean(agree)) if agree else float("nan"),
        "planted_genes": int((planted.abs() > cut).sum()),
        "planted_genes_read": n_read_planted,
        "genes_read": int(len(universe)),
        "hits": hits,
        "persister_top_planted": int(sum(abs(lfc[g]) > cut for g in top["persister"][:k])),
        "non_persister_top_planted": int(sum(abs(lfc[g]) > cut for g in top["non_persister"][:k])),
    }


def _sign_share(signed: pd.Series, *, want: int) -> dict[str, Any]:
    """How many of ``signed``'s genes have sign ``want``, against a fair coin (one-sided binomial)."""
    right = [str(g) for g in signed.index if np.sign(signed[g]) == want]
    n = int(signed.size)
    return {
        "genes_read": n,
        "right_sign": len(right),
        "fraction_right": len(right) / n if n else None,
        # P(X >= right), X ~ Binomial(n, 0.5): how often a coin would do as well
        "p_value": float(stats.binom.sf(len(right) - 1, n, 0.5)) if n else None,
        "wrong_sign_genes": sorted(str(g) for g in signed.index if np.sign(signed[g]) != want),
    }


def planted_signs(
    table: pd.DataFrame,
    planted: pd.Series,
    *,
    cut: float = PLANTED_LFC_CUT,
    column: str = "signed_attribution",
) -> dict[str, Any]:
    """Do planted genes come back with the planted sign? Down and up genes apart, against chance 0.5.

    A ranking by |attribution| can find the planted genes and still read them
    the wrong way round; and genes planted *down* in persisters (the
    proliferation programme, lower in persisters) are the ones a reader of two
    per-class lists never sees. Among the planted genes the model reads
    (``table``'s index), ``down``: the share with a negative ``column`` (higher
    expression -> non-persister), ``up``: the share with a positive one; a model
    that read signs at random would score 0.5. ``proliferation_genes_read``:
    the named proliferation genes among them, with their value.
    """
    lfc = planted.reindex(table.index).fillna(0.0).astype(float)
    values = table[column].astype(float)
    down, up = lfc < -cut, lfc > cut
    named = [g for g in table.index if g in PROLIFERATION_GENES and down[g]]
    return {
        "column": column,
        "lfc_cut": cut,
        "chance": 0.5,
        "down": _sign_share(values[down].sort_index(), want=-1),
        "up": _sign_share(values[up].sort_index(), want=+1),
        "proliferation_genes_read": {str(g): float(values[g]) for g in sorted(named)},
    }
