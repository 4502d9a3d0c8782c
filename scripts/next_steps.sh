#!/usr/bin/env bash
# Printed at the end of `make run`: where to look next.
set -euo pipefail
predictions=${1:-predictions/example_predictions.csv}
echo
echo "== OncoPersistNet: pipeline finished =="
echo "Test metrics (metrics/evaluate.json):"
dvc metrics show --precision 3 2>/dev/null || cat metrics/evaluate.json
echo
echo "Registered model (models/registry.json):"
python - <<'PY'
import json
r = json.load(open("models/registry.json"))
print(f"  {r['model_name']} version {r['version']} -> alias '{r['alias']}': {r['reason']}")
PY
echo
echo "Example predictions: ${predictions} ($(($(wc -l < "${predictions}") - 1)) cells)"
echo
echo "Next:"
echo "  make ui                                   # compare runs in the MLflow UI (http://127.0.0.1:5000)"
echo "  make predict INPUT=cells.h5ad OUTPUT=p.csv  # classify your cells with the champion model"
echo "  dvc plots show                            # ROC / PR / confusion / training curves as HTML"
