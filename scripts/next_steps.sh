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

evaluate = json.load(open("metrics/evaluate.json"))
comparison = json.load(open("metrics/comparison.json"))
parity = json.load(open("metrics/export.json"))["parity_max_abs_diff"]
registry = json.load(open("models/registry.json"))
seeds = comparison["context"]["seeds"]
print(f"Held-out samples, mean +- std over seeds {seeds} (metrics/comparison.json, reports/comparison.md):")
print(f"  {'model':<22}{'F1':>15}{'ROC-AUC':>15}{'Brier':>8}")
from oncopersistnet.evaluation.report import ordered_families

for model in ordered_families(comparison["models"]):
    m = comparison["models"][model]
    f1, auc = m["f1"], m["roc_auc"]
    print(f"  {model:<22}{f1['mean']:>8.3f} +-{f1['std']:.3f}{auc['mean']:>8.3f} +-{auc['std']:.3f}{m['brier']['mean']:>8.3f}")
test, raw, cal = evaluate["test"], evaluate["test_uncalibrated"], evaluate["calibration"]
print(f"Deployable {evaluate['model']} ({cal['method']} calibration): Brier {raw['brier']:.3f} -> {test['brier']:.3f}, "
      f"ECE {raw['ece']:.3f} -> {test['ece']:.3f} (reports/figures/calibration.png)")
print(f"ONNX parity, max |onnxruntime - PyTorch|: {parity:.1e} (metrics/export.json)")
print(f"Registered: {registry['model_name']} version {registry['version']} -> alias '{registry['alias']}'")
print(f"  {registry['reason']}")
explain = json.load(open("metrics/explain.json"))
if explain.get("planted"):
    planted = explain["planted"]
    print(f"Gene attributions: precision@{planted['k']} vs the planted programme {planted['precision_at_k']:.2f} "
          f"(chance {planted['chance_rate']:.3f}) (metrics/explain.json, reports/figures/attributions.png)")
transfer = json.load(open("metrics/transfer.json"))
if "skipped" not in transfer:
    best = max(transfer["trained_on_new_data_only"].items(), key=lambda kv: kv[1]["roc_auc"]["mean"])
    print(f"Transfer to {transfer['study']['dataset']}: ROC-AUC zero-shot {transfer['zero_shot']['roc_auc']:.3f}, "
          f"fine-tuned {transfer['fine_tuned']['roc_auc']:.3f}; best trained on the new data alone "
          f"({best[0]}) {best[1]['roc_auc']['mean']:.3f} (reports/transfer.md; cross-study: reports/cross_study.md)")
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
echo "  oncopersistnet explain --input cells.h5ad    # which genes drive the champion's calls"
echo "  oncopersistnet transfer --help               # adapt the champion to another labelled study"
