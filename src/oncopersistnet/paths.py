"""Where every stage reads and writes, relative to the project root.

dvc.yaml declares the same paths as deps and outs; keep the two in step.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from oncopersistnet.errors import ConfigError

#: User files a stage reads must live here: the folder is a dependency of those stages.
EXTERNAL_DIR = "data/external"


@dataclass(frozen=True)
class ProjectPaths:
    """Artifact locations under one project root."""

    root: Path = Path(".")

    def _p(self, relative: str) -> Path:
        return self.root / relative

    def external_file(self, key: str, value: str, hint: str = "") -> Path:
        """``value`` (a params path) resolved under the root, refused outside ``data/external/``.

        Paths are compared lexically normalised: data/external may itself be a
        symlink to a big disk, and "data/external/../x" must not slip through.
        """
        external = Path(os.path.normpath(os.path.abspath(self.root / EXTERNAL_DIR)))
        path = self.root / value
        if external not in Path(os.path.normpath(os.path.abspath(path))).parents:
            raise ConfigError(
                f"{key}: {value} is outside {EXTERNAL_DIR}/; put the file (or a symlink to it) there "
                f"so that DVC notices when it changes{hint}"
            )
        return path

    @property
    def raw(self) -> Path:
        return self._p("data/raw/cells.h5ad")

    @property
    def validated(self) -> Path:
        return self._p("data/validated/cells.h5ad")

    @property
    def validation_report(self) -> Path:
        return self._p("reports/validation.json")

    @property
    def validation_docs(self) -> Path:
        return self._p("reports/validation_docs")

    @property
    def processed(self) -> Path:
        return self._p("data/processed")

    def features(self, split: str) -> Path:
        return self.processed / f"{split}.npz"

    @property
    def split_table(self) -> Path:
        return self.processed / "split.csv"

    @property
    def preprocess_summary(self) -> Path:
        return self.processed / "summary.json"

    @property
    def preprocessor(self) -> Path:
        return self._p("models/preprocessor.npz")

    @property
    def model(self) -> Path:
        return self._p("models/model.pt")

    @property
    def run_reference(self) -> Path:
        """The train stage's MLflow run (id, provenance): read by later stages, not a DVC output."""
        return self._p("models/mlflow_run.json")

    @property
    def data_metrics(self) -> Path:
        """What the raw data look like (ingest): the README's description of the dataset."""
        return self._p("metrics/data.json")

    @property
    def training_signal(self) -> Path:
        """The training cells' signal figures (preprocess): where the no-call floors sit against them."""
        return self._p("metrics/training_signal.json")

    @property
    def training_history(self) -> Path:
        return self._p("metrics/training_history.csv")

    @property
    def evaluate_metrics(self) -> Path:
        return self._p("metrics/evaluate.json")

    @property
    def validation_metrics(self) -> Path:
        """The deployed model on the validation cells: what sweeps choose on (test stays the report)."""
        return self._p("metrics/validation.json")

    @property
    def comparison_metrics(self) -> Path:
        return self._p("metrics/comparison.json")

    @property
    def comparison_per_sample(self) -> Path:
        return self._p("metrics/comparison_per_sample.csv")

    @property
    def evaluate_per_sample(self) -> Path:
        return self._p("metrics/evaluate_per_sample.csv")

    @property
    def comparison_report(self) -> Path:
        return self._p("reports/comparison.md")

    @property
    def plots(self) -> Path:
        return self._p("plots")

    @property
    def figures(self) -> Path:
        return self._p("reports/figures")

    @property
    def onnx(self) -> Path:
        return self._p("models/oncopersistnet.onnx")

    @property
    def genes(self) -> Path:
        return self._p("models/genes.txt")

    @property
    def export_metrics(self) -> Path:
        return self._p("metrics/export.json")

    @property
    def explain_metrics(self) -> Path:
        return self._p("metrics/explain.json")

    @property
    def attributions(self) -> Path:
        """Per-gene integrated-gradients table of the explain stage."""
        return self._p("reports/attributions.csv")

    @property
    def attributions_figure(self) -> Path:
        return self._p("reports/figures/attributions.png")

    @property
    def registry(self) -> Path:
        """What register did in this clone's store (version, alias, run id): not a DVC output."""
        return self._p("models/registry.json")

    @property
    def register_metrics(self) -> Path:
        """The register stage's store-independent part (model name, the candidate's gate figures)."""
        return self._p("models/register.json")

    @property
    def models(self) -> Path:
        return self._p("models")

    @property
    def transfer_dir(self) -> Path:
        """The adapted model (ONNX, checkpoint, preprocessor) of the transfer stage."""
        return self._p("models/transfer")

    @property
    def transfer_record(self) -> Path:
        """The adapted model's registration and parent URI in this clone's store: not a DVC output."""
        return self._p("models/transfer_registration.json")

    @property
    def transfer_metrics(self) -> Path:
        return self._p("metrics/transfer.json")

    @property
    def transfer_report(self) -> Path:
        return self._p("reports/transfer.md")

    @property
    def cross_study_metrics(self) -> Path:
        return self._p("metrics/cross_study.json")

    @property
    def cross_study_report(self) -> Path:
        return self._p("reports/cross_study.md")

    @property
    def cross_study_figure(self) -> Path:
        return self._p("reports/figures/cross_study.png")

    @property
    def trust_metrics(self) -> Path:
        """Stage trust: the out-of-distribution rate per dataset."""
        return self._p("metrics/trust.json")

    @property
    def trust_figure(self) -> Path:
        return self._p("reports/figures/ood_distance.png")
