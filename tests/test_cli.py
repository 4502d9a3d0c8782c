"""The `oncopersistnet` command line as users meet it."""

from __future__ import annotations

import sys

import anndata as ad
import pytest
from helpers import run

from oncopersistnet.cli import build_parser, main


def test_help_documents_every_command(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    for command in ("predict", "simulate"):
        assert command in out
    args = build_parser().parse_args(["predict", "--input", "a.h5ad", "--output", "b.csv"])
    assert args.model is None  # resolved to models:/<register.model_name>@champion


def test_console_script_is_installed(tmp_path):
    result = run(["oncopersistnet", "predict", "--help"], tmp_path)
    assert "--model" in result.stdout and "models:/oncopersistnet@champion" in " ".join(result.stdout.split())


def test_simulate_writes_unlabelled_cells(tmp_path):
    assert (
        main(
            [
                "simulate",
                "--output",
                str(tmp_path / "c.h5ad"),
                "--cells",
                "40",
                "--genes",
                "50",
                "--samples",
                "2",
                "--unlabelled",
            ]
        )
        == 0
    )
    cells = ad.read_h5ad(tmp_path / "c.h5ad")
    assert cells.shape == (40, 50) and "label" not in cells.obs


def test_predict_without_a_champion_says_what_to_do(tmp_path):
    main(
        ["simulate", "--output", str(tmp_path / "c.h5ad"), "--cells", "20", "--genes", "30", "--samples", "2"]
    )
    result = run(
        [
            sys.executable,
            "-m",
            "oncopersistnet.cli",
            "predict",
            "--input",
            "c.h5ad",
            "--output",
            "p.csv",
            "--tracking-uri",
            f"sqlite:///{tmp_path}/empty.db",
        ],
        tmp_path,
        check=False,
    )
    assert result.returncode == 1 and "Traceback" not in result.stderr
    errors = [line for line in result.stderr.splitlines() if "ERROR" in line]
    assert len(errors) == 1 and "models:/oncopersistnet@champion: cannot be resolved" in errors[0]
    assert not (tmp_path / "p.csv").exists()


def test_predict_option_ranges_are_checked(tmp_path, capsys):
    for option, value in (("--threshold", "1.5"), ("--chunk-size", "0"), ("--min-gene-fraction", "-0.1")):
        assert main(["predict", "--input", "a.h5ad", "--output", str(tmp_path / "p.csv"), option, value]) == 1
        assert (
            f"{option}: {float(value) if '.' in value else int(value)} is out of range"
            in capsys.readouterr().err
        )


def test_small_gene_panels_simulate(tmp_path):
    assert (
        main(
            [
                "simulate",
                "--output",
                str(tmp_path / "c.h5ad"),
                "--cells",
                "20",
                "--genes",
                "10",
                "--samples",
                "2",
            ]
        )
        == 0
    )


def test_option_choices_are_the_ones_params_yaml_accepts():
    from oncopersistnet.choices import FINE_TUNE_MODES, ORIENTATIONS

    commands = build_parser()._subparsers._group_actions[0].choices
    choices = {
        (name, option): action.choices
        for name, command in commands.items()
        for action in command._actions
        for option in action.option_strings
        if action.choices
    }
    assert (
        choices[("predict", "--orientation")] == choices[("explain", "--orientation")] == list(ORIENTATIONS)
    )
    assert choices[("transfer", "--mode")] == list(FINE_TUNE_MODES)
