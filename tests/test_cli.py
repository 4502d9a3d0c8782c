"""The `oncopersistnet` command line as users meet it."""

from __future__ import annotations

import sys

import anndata as ad
import pytest

from oncopersistnet.cli import build_parser, main

from helpers import run


def test_help_documents_every_command(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    for command in ("predict", "simulate"):
        assert command in out
    args = build_parser().parse_args(["predict", "--input", "a.h5ad", "--output", "b.csv"])
    assert args.model == "models:/oncopersistnet@champion"


def test_console_script_is_installed(tmp_path):
    result = run(["oncopersistnet", "predict", "--help"], tmp_path)
    assert "--model" in result.stdout and "models:/oncopersistnet@champion" in result.stdout


def test_simulate_writes_unlabelled_cells(tmp_path):
    assert main(["simulate", "--output", str(tmp_path / "c.h5ad"), "--cells", "40", "--genes", "50", "--samples", "2", "--unlabelled"]) == 0
    cells = ad.read_h5ad(tmp_path / "c.h5ad")
    assert cells.shape == (40, 50) and "label" not in cells.obs


def test_predict_without_a_champion_says_what_to_do(tmp_path):
    main(["simulate", "--output", str(tmp_path / "c.h5ad"), "--cells", "20", "--genes", "30", "--samples", "2"])
    result = run(
        [sys.executable, "-m", "oncopersistnet.cli", "predict", "--input", "c.h5ad", "--output", "p.csv",
         "--tracking-uri", f"sqlite:///{tmp_path}/empty.db"],
        tmp_path, check=False,
    )
    assert result.returncode == 1 and "Traceback" not in result.stderr
    errors = [line for line in result.stderr.splitlines() if "ERROR" in line]
    assert len(errors) == 1 and "models:/oncopersistnet@champion: cannot be resolved" in errors[0]
    assert not (tmp_path / "p.csv").exists()


def test_predict_refuses_a_non_csv_output(tmp_path):
    assert main(["predict", "--input", "a.h5ad", "--output", str(tmp_path / "p.txt"), "--model", str(tmp_path / "absent.onnx")]) == 1


def test_small_gene_panels_simulate(tmp_path):
    assert main(["simulate", "--output", str(tmp_path / "c.h5ad"), "--cells", "20", "--genes", "10", "--samples", "2"]) == 0
