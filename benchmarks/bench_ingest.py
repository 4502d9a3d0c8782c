"""Peak memory and time of reading, labelling and harmonising a large input.

The issue's bar: a 100,000-cell input must not be densified as a whole. This
simulates N cells x G genes (default 100,000 x 10,000), writes them as .h5ad, then runs the
ingest path (read_counts -> label_cells -> harmonize_adata) and the validation
summaries in a fresh process and reports its peak RSS next to the size a dense
float32 copy would need. Run with `make bench`; figures go to
benchmarks/results/ingest.json. Measurements, not assertions.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from oncopersistnet.atomic import write_json

_CHILD = """
import sys
from dataclasses import replace
from oncopersistnet.config import shipped_params
from oncopersistnet.data.load import load_labelled
from oncopersistnet.genes import harmonize_adata
from oncopersistnet.validation import cell_summary, gene_summary
adata = load_labelled(replace(shipped_params().data, input=sys.argv[1]))
adata, _ = harmonize_adata(adata)
cell_summary(adata); gene_summary(adata)
print(adata.n_obs, adata.n_vars, adata.X.nnz)
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cells", type=int, default=100_000)
    parser.add_argument("--genes", type=int, default=10_000, help="a wide matrix makes densification obvious")
    parser.add_argument("--output", default="benchmarks/results/ingest.json")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        source = Path(tmp) / "cells.h5ad"
        subprocess.run(
            [
                sys.executable,
                "-m",
                "oncopersistnet.cli",
                "--log-level",
                "WARNING",
                "--params",
                "/nonexistent",
                "simulate",
                "--output",
                str(source),
                "--cells",
                str(args.cells),
                "--genes",
                str(args.genes),
            ],
            check=True,
        )
        report = Path(tmp) / "child.out"
        started = time.perf_counter()
        with open(report, "w") as handle:
            child = subprocess.Popen([sys.executable, "-c", _CHILD, str(source)], stdout=handle)
            # wait4 gives this child's own peak RSS (the simulating process is not counted)
            _, status, usage = os.wait4(child.pid, 0)
        elapsed = time.perf_counter() - started
        if os.waitstatus_to_exitcode(status) != 0:
            raise SystemExit(f"ingest child failed with status {status}")
        n_cells, n_genes, nnz = (int(x) for x in report.read_text().split())
    results = {
        "cells": n_cells,
        "genes": n_genes,
        "nonzeros": nnz,
        "seconds": round(elapsed, 1),
        "dense_float32_mib": round(n_cells * n_genes * 4 / 2**20),
        "sparse_csr_mib": round(nnz * 8 / 2**20),
        "peak_rss_mib": round(usage.ru_maxrss / 1024),
    }
    write_json(args.output, results)
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
