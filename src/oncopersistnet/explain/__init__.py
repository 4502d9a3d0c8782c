"""Gene-level explanations of the deployed model: integrated gradients, per-class rankings, truth checks.

See ``README.md`` in this folder for the shipped persister signatures and why,
on simulated data, agreeing with them is partly circular.
"""

from oncopersistnet.explain.aggregate import (
    SIGNED_COLUMNS,
    TABLE_COLUMNS,
    gene_table,
    signed_ranking,
    signed_table,
    top_genes,
)
from oncopersistnet.explain.attribution import (
    Attributions,
    attention_by_position,
    calibrated_logit,
    contrastive_gradients,
    deployed_graph,
    integrated_gradients,
)
from oncopersistnet.explain.explainer import (
    Explanation,
    annotated_table,
    evenly_spaced,
    explain_cells,
    explanation_summary,
)
from oncopersistnet.explain.signatures import (
    Signature,
    load_signatures,
    signature_overlap,
    signature_overlaps,
)
from oncopersistnet.explain.truth import PLANTED_LFC_CUT, planted_recovery, planted_signs

__all__ = [
    "PLANTED_LFC_CUT",
    "SIGNED_COLUMNS",
    "TABLE_COLUMNS",
    "Attributions",
    "Explanation",
    "Signature",
    "annotated_table",
    "attention_by_position",
    "calibrated_logit",
    "contrastive_gradients",
    "deployed_graph",
    "evenly_spaced",
    "explain_cells",
    "explanation_summary",
    "gene_table",
    "integrated_gradients",
    "load_signatures",
    "planted_recovery",
    "planted_signs",
    "signature_overlap",
    "signature_overlaps",
    "signed_ranking",
    "signed_table",
    "top_genes",
]
