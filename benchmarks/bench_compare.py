"""The model comparison with more seeds and grouped cross-validation by sample.

`make run` compares models on the pipeline's one split with 3 seeds; its test set
is 2 samples. This benchmark reruns the same comparison on the validated data of
the last `make run` with 5 seeds and grouped 4-fold CV by sample (every sample
tested once), so the spread includes the choice of held-out samples. No MLflow
runs; figures go to benchmarks/results/comparison_cv.{md,json}. Measurements,
not assertions.
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from dataclasses import replace
from pathlib import Path

from oncopersistnet.atomic import write_json, write_text
from oncopersistnet.config import load_params, params_from_dict
from oncopersistnet.errors import OncoPersistNetError
from oncopersistnet.evaluation.comparison import comparison_summary, run_comparison, sample_level_table
from oncopersistnet.evaluation.folds import pipeline_folds
from oncopersistnet.evaluation.report import comparison_markdown
from oncopersistnet.logging_setup import configure_logging
from oncopersistnet.paths import ProjectPaths
from oncopersistnet.preprocessing.outputs import read_preprocess_summary


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--folds", type=int, default=4)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results"))
    args = parser.parse_args()
    configure_logging()
    logging.getLogger("oncopersistnet.model.training").setLevel(logging.WARNING)
    logging.getLogger("oncopersistnet.preprocessing").setLevel(logging.WARNING)
    paths = ProjectPaths(Path("."))
    params = load_params("params.yaml")
    # through params_from_dict, so --folds 1 gets the same message as params.yaml would
    params = params_from_dict(
        replace(params, compare=replace(params.compare, n_seeds=args.seeds, cv_folds=args.folds)).to_dict()
    )
    started = time.perf_counter()
    folds = pipeline_folds(params, paths)
    results = run_comparison(folds, params, coverage=params.predict.coverage)
    per_sample = sample_level_table(results)
    comparison = comparison_summary(
        results, folds, params, data_hash=read_preprocess_summary(paths)["data_hash"]
    )
    comparison["seconds"] = time.perf_counter() - started
    write_json(args.out / "comparison_cv.json", comparison)
    write_text(
        args.out / "comparison_cv.md",
        comparison_markdown(
            comparison,
            per_sample,
            origin=(
                f"Written by benchmarks/bench_compare.py in {comparison['seconds']:.0f} s; "
                "every model saw the same folds and features (no MLflow runs)."
            ),
        ),
    )
    print(
        json.dumps(
            {k: {m: comparison["models"][k][m] for m in ("roc_auc", "f1")} for k in comparison["models"]},
            indent=1,
        )
    )


if __name__ == "__main__":
    try:
        main()
    except OncoPersistNetError as exc:
        logging.getLogger("oncopersistnet").error("bench_compare: %s", exc)
        raise SystemExit(1) from None
