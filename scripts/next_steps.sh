#!/usr/bin/env bash
# Printed at the end of `make run`: what was built and where to look next.
set -euo pipefail
predictions=${1:-}
model=${2:-models:/oncopersistnet@champion}
echo
echo "== OncoPersistNet: pipeline finished =="
python - "$predictions" "$model" <<'PY'
import json
import sys

metrics = json.load(open("metrics/evaluate.json"))
parity = json.load(open("metrics/export.json"))["parity_max_abs_diff"]
registry = json.load(open("models/registry.json"))
print("Test metrics on held-out samples (metrics/evaluate.json):")
print(f"  {'model':<22}{'F1':>7}{'ROC-AUC':>9}{'PR-AUC':>8}{'bal.acc':>9}")
for model, m in metrics.items():
    print(f"  {model:<22}{m['f1']:>7.3f}{m['roc_auc']:>9.3f}{m['pr_auc']:>8.3f}{m['balanced_accuracy']:>9.3f}")
print(f"ONNX parity, max |onnxruntime - PyTorch|: {parity:.1e} (metrics/export.json)")
print(f"Registered: {registry['model_name']} version {registry['version']} -> alias '{registry['alias']}'")
print(f"  {registry['reason']}")
if sys.argv[1]:
    with open(sys.argv[1]) as handle:
        rows = sum(1 for _ in handle) - 1
    print(f"Example predictions: {sys.argv[1]} ({rows} new cells, scored by {sys.argv[2]})")
PY
echo
echo "Next:"
echo "  make ui                                      # compare runs in the MLflow UI (http://127.0.0.1:5000)"
echo "  make predict INPUT=cells.h5ad OUTPUT=p.csv   # classify your cells with the champion model"
echo "  dvc metrics show; dvc plots show             # metrics table; ROC / PR / confusion / training curves"
