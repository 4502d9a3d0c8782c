"""Every model of the comparison behind one small interface.

Each candidate is fitted on a fold's training cells (and, where it needs one, its
validation cells: early stopping, calibration) and scored on the fold's test
cells. Hyper-parameters come from params.yaml; the learned state stays in the
object. Families:

* ``cnn_lstm``: the project's network, exactly as the train stage fits it;
* ``cnn_lstm_attention``: the same network pooling every LSTM output by additive
  attention instead of reading the final state (same initial weights where shared);
* ``cnn_lstm_permuted``: the same network with the PCA components fed in a random
  order (a new order per seed): tests whether the sequence reading matters;
* ``mlp``: a plain two-layer network with about the CNN-LSTM's parameter count;
* ``logistic_regression``, ``linear_svm`` (its scores Platt-scaled on validation into a
  probability) and ``hist_gbm``: scikit-learn on the same PCA features;
* ``logistic_regression_all_genes``, ``linear_svm_all_genes``: the same linear models on every
  gene (log1p-normalised, standardised on the training cells), so that the linear baselines
  are seen on both views: the genes gene selection kept, and all of them;
* ``marker_score``: mean log-expression of persister-up genes minus persister-down
  genes, learned from training cells (or given), thresholded by a 1-D logistic fit on train;
* ``celltypist``: the classifier users would pick instead, trained on the training
  cells through its own API on log1p-normalised expression of all genes.

Every family that takes a class weight gets ``compare.class_weight``. What each family
reads (``view``, :meth:`Candidate.genes_read`) goes into the report beside its figures:
"same features" holds only within a view. The calibration and threshold every family's
probability then gets are not here but in :mod:`~oncopersistnet.evaluation.posthoc`, the
same step for all.
"""

from __future__ import annotations

import logging
import os
import tempfile
from abc import ABC, abstractmethod
from dataclasses import replace
from typing import Any

import numpy as np

from oncopersistnet.choices import NETWORK_ARCHITECTURES
from oncopersistnet.config import Params
from oncopersistnet.data.labels import PERSISTER, label_names
from oncopersistnet.errors import InputDataError, ModelError
from oncopersistnet.evaluation.folds import Fold
from oncopersistnet.evaluation.posthoc import log_odds
from oncopersistnet.model import predict_proba, train_model
from oncopersistnet.preprocessing import log_normalize

logger = logging.getLogger(__name__)


class Candidate(ABC):
    """One model family with its hyper-parameters; ``fit`` then ``predict_proba``."""

    family = ""
    #: False when the seed cannot change the result (one fit per fold is enough).
    seeded = True
    #: What the family reads: ``pca`` (PCA of the selected genes), ``all_genes`` or ``signature``
    #: (a few genes it picks from all of them).
    view = "pca"

    def __init__(self, params: Params, seed: int) -> None:
        self.params = params
        self.seed = seed

    @abstractmethod
    def fit(self, fold: Fold) -> Candidate:
        """Learn from ``fold``'s train (and validation) cells only."""

    @abstractmethod
    def predict_proba(self, fold: Fold, split: str = "test") -> np.ndarray:
        """Persister probability of every cell of ``split``."""

    def log_odds(self, fold: Fold, split: str = "test") -> np.ndarray:
        """The persister log-odds of every cell of ``split``: what the common post-hoc step calibrates.

        The logit of :meth:`predict_proba` unless the family has an unsaturated decision score.
        """
        return log_odds(self.predict_proba(fold, split))

    def genes_read(self, fold: Fold) -> np.ndarray:
        """Indices into ``fold.genes`` of the genes the fitted model reads (its input's genes)."""
        if self.view == "pca":
            return fold.preprocessor.selected_
        return np.arange(len(fold.genes))

    def hyperparameters(self) -> dict[str, Any]:
        """What the MLflow run logs as this family's params."""
        return {}

    def details(self) -> dict[str, Any]:
        """Facts learned in ``fit`` worth reporting (parameter count, permutation, signature)."""
        return {}


def sklearn_class_weight(params: Params) -> str | None:
    """``compare.class_weight`` as scikit-learn's ``class_weight`` argument."""
    return None if params.compare.class_weight == "none" else params.compare.class_weight


def logistic_regression(params: Params, seed: int) -> Any:
    """The L2 logistic regression of both views (PCA features, all genes), unfitted."""
    from sklearn.linear_model import LogisticRegression

    return LogisticRegression(
        C=params.compare.logistic_c,
        class_weight=sklearn_class_weight(params),
        max_iter=5000,
        random_state=seed,
    )


def linear_svm(params: Params, seed: int) -> Any:
    """The linear SVM of both views, unfitted."""
    from sklearn.svm import LinearSVC

    return LinearSVC(
        C=params.compare.svm_c, class_weight=sklearn_class_weight(params), max_iter=20000, random_state=seed
    )


# --------------------------------------------------------------------- networks
class NetworkCandidate(Candidate):
    """The CNN-LSTM, its attention variant, its component-permuted twin or the same-size MLP,
    trained like the train stage."""

    def __init__(
        self, params: Params, seed: int, *, architecture: str = "cnn_lstm", permute: bool = False
    ) -> None:
        super().__init__(params, seed)
        self.config = replace(
            params.train, seed=seed, architecture=architecture, class_weight=params.compare.class_weight
        )
        self.permute = permute
        self.family = f"{architecture}_permuted" if permute else architecture

    def _x(self, fold: Fold, split: str) -> np.ndarray:
        features = fold.features[split].X
        return features[:, self.order_] if self.permute else features

    def fit(self, fold: Fold) -> NetworkCandidate:
        n = fold.features["train"].X.shape[1]
        self.order_ = np.random.default_rng([self.seed, 1]).permutation(n) if self.permute else np.arange(n)
        result = train_model(
            (self._x(fold, "train"), fold.features["train"].y),
            (self._x(fold, "val"), fold.features["val"].y),
            self.config,
            progress=False,
        )
        self.model_, self.best_epoch_ = result.model, result.best_epoch
        return self

    def predict_proba(self, fold: Fold, split: str = "test") -> np.ndarray:
        return predict_proba(self.model_, self._x(fold, split)).astype(np.float64)

    def hyperparameters(self) -> dict[str, Any]:
        out = {f"train.{k}": v for k, v in vars(self.config).items() if k != "seed"}
        # Constructor settings params.yaml does not hold (the attention width) come from the fitted model.
        fitted_config = self.model_.config if hasattr(self, "model_") else {}
        return out | {k: v for k, v in fitted_config.items() if k == "attention_units"}

    def details(self) -> dict[str, Any]:
        out: dict[str, Any] = {"n_parameters": self.model_.n_parameters, "best_epoch": self.best_epoch_}
        if self.permute:
            out["component_order"] = [int(i) for i in self.order_]
        return out


# ------------------------------------------------------------ scikit-learn on PCA
class PcaFeatureCandidate(Candidate):
    """A scikit-learn classifier on the fold's PCA features; ``fit`` sets ``model_``."""

    seeded = False

    def predict_proba(self, fold: Fold, split: str = "test") -> np.ndarray:
        return self.model_.predict_proba(fold.features[split].X)[:, 1]


class LogisticRegressionCandidate(PcaFeatureCandidate):
    family = "logistic_regression"

    def fit(self, fold: Fold) -> LogisticRegressionCandidate:

        train = fold.features["train"]
        self.model_ = logistic_regression(self.params, self.seed).fit(train.X, train.y)
        return self

    def hyperparameters(self) -> dict[str, Any]:
        return {
            "C": self.params.compare.logistic_c,
            "class_weight": self.params.compare.class_weight,
            "penalty": "l2",
        }


class LinearSvmCandidate(PcaFeatureCandidate):
    """Linear SVM on train; its scores Platt-calibrated on the validation split (as the network is)."""

    family = "linear_svm"

    def fit(self, fold: Fold) -> LinearSvmCandidate:
        from sklearn.calibration import CalibratedClassifierCV
        from sklearn.frozen import FrozenEstimator

        train, val = fold.features["train"], fold.features["val"]
        svm = linear_svm(self.params, self.seed).fit(train.X, train.y)
        self.model_ = CalibratedClassifierCV(FrozenEstimator(svm), method="sigmoid").fit(val.X, val.y)
        return self

    def hyperparameters(self) -> dict[str, Any]:
        return {
            "C": self.params.compare.svm_c,
            "class_weight": self.params.compare.class_weight,
            "calibration": "sigmoid on validation",
        }


class HistGbmCandidate(PcaFeatureCandidate):
    """Histogram gradient boosting without internal early stopping.

    Seeds do not change it below 200,000 training cells (above that, scikit-learn
    bins on a seeded subsample); it is fitted once per fold.
    """

    family = "hist_gbm"

    def fit(self, fold: Fold) -> HistGbmCandidate:
        from sklearn.ensemble import HistGradientBoostingClassifier

        train = fold.features["train"]
        self.model_ = HistGradientBoostingClassifier(
            max_iter=self.params.compare.gbm_max_iter,
            learning_rate=self.params.compare.gbm_learning_rate,
            class_weight=sklearn_class_weight(self.params),
            early_stopping=False,
            random_state=self.seed,
        ).fit(train.X, train.y)
        return self

    def hyperparameters(self) -> dict[str, Any]:
        return {
            "max_iter": self.params.compare.gbm_max_iter,
            "learning_rate": self.params.compare.gbm_learning_rate,
            "class_weight": self.params.compare.class_weight,
        }


# ------------------------------------------------------------ linear on all genes
class AllGenesLinearCandidate(Candidate):
    """A linear model on every gene: log1p of counts normalised to ``preprocess.target_sum``,
    standardised with the training cells' mean and spread. No gene selection, no PCA."""

    seeded = False
    view = "all_genes"

    def _logged(self, fold: Fold, split: str) -> np.ndarray:
        """log1p of ``split``'s counts per ``preprocess.target_sum``, every gene, dense."""
        logged = log_normalize(fold.counts[split], self.params.preprocess.target_sum)
        return logged.toarray() if hasattr(logged, "toarray") else np.asarray(logged)

    def _x(self, fold: Fold, split: str) -> np.ndarray:
        """The model's input: the logged expression standardised by the training cells' scaler."""
        return self.scaler_.transform(self._logged(fold, split))

    def fit(self, fold: Fold) -> AllGenesLinearCandidate:
        from sklearn.preprocessing import StandardScaler

        train = self._logged(fold, "train")
        self.scaler_ = StandardScaler().fit(train)
        self.model_ = self._estimator().fit(self.scaler_.transform(train), fold.features["train"].y)
        return self

    @abstractmethod
    def _estimator(self) -> Any:
        """The unfitted scikit-learn classifier."""

    def predict_proba(self, fold: Fold, split: str = "test") -> np.ndarray:
        return self.model_.predict_proba(self._x(fold, split))[:, 1]


class AllGenesLogisticCandidate(AllGenesLinearCandidate):
    family = "logistic_regression_all_genes"

    def _estimator(self) -> Any:
        return logistic_regression(self.params, self.seed)

    def hyperparameters(self) -> dict[str, Any]:
        return {
            "C": self.params.compare.logistic_c,
            "class_weight": self.params.compare.class_weight,
            "input": "all genes",
        }


class AllGenesSvmCandidate(AllGenesLinearCandidate):
    """The linear SVM on all genes; its margin becomes a probability through the logistic link
    ``sigmoid(margin)``, which the common post-hoc step then recalibrates on validation."""

    family = "linear_svm_all_genes"

    def _estimator(self) -> Any:
        return linear_svm(self.params, self.seed)

    def predict_proba(self, fold: Fold, split: str = "test") -> np.ndarray:
        return 1.0 / (1.0 + np.exp(-self.log_odds(fold, split)))

    def log_odds(self, fold: Fold, split: str = "test") -> np.ndarray:
        return np.asarray(self.model_.decision_function(self._x(fold, split)), dtype=np.float64)

    def hyperparameters(self) -> dict[str, Any]:
        return {
            "C": self.params.compare.svm_c,
            "class_weight": self.params.compare.class_weight,
            "input": "all genes",
        }


# ------------------------------------------------------------------ gene-level
class MarkerScoreCandidate(Candidate):
    """A persister signature score: what a biologist would compute in scanpy by hand."""

    family = "marker_score"
    seeded = False
    view = "signature"

    def _logged(self, fold: Fold, split: str) -> Any:
        return log_normalize(fold.counts[split], self.params.preprocess.target_sum)

    def _score(self, logged: Any) -> np.ndarray:
        up = np.asarray(logged[:, self.up_].mean(axis=1)).ravel()
        down = np.asarray(logged[:, self.down_].mean(axis=1)).ravel() if self.down_.size else 0.0
        return up - down

    def fit(self, fold: Fold) -> MarkerScoreCandidate:
        from sklearn.linear_model import LogisticRegression

        logged = self._logged(fold, "train")
        y = fold.features["train"].y
        given = self.params.compare.marker_genes
        if given:
            index = {g: i for i, g in enumerate(fold.genes)}
            self.up_ = np.array([index[g] for g in given if g in index], dtype=np.int64)
            self.down_ = np.zeros(0, dtype=np.int64)
            missing = [g for g in given if g not in index]
            if self.up_.size < max(1, len(given) / 2):
                raise InputDataError(
                    f"compare.marker_genes: only {self.up_.size} of {len(given)} genes "
                    "are among the data's genes "
                    f"(missing e.g. {', '.join(missing[:5])}); give symbols as in the data's var_names"
                )
            if missing:
                logger.warning(
                    "compare.marker_genes: %d of %d genes not in the data, scored without them: %s",
                    len(missing),
                    len(given),
                    ", ".join(missing[:10]),
                )
        else:
            difference = (
                np.asarray(logged[y == 1].mean(axis=0)).ravel()
                - np.asarray(logged[y == 0].mean(axis=0)).ravel()
            )
            k = min(self.params.compare.marker_top_genes, len(difference) // 2)
            order = np.argsort(difference, kind="stable")
            self.up_, self.down_ = np.sort(order[::-1][:k]), np.sort(order[:k])
        self.threshold_model_ = LogisticRegression(class_weight="balanced").fit(
            self._score(logged)[:, None], y
        )
        return self

    def genes_read(self, fold: Fold) -> np.ndarray:
        return np.union1d(self.up_, self.down_)

    def predict_proba(self, fold: Fold, split: str = "test") -> np.ndarray:
        return self.threshold_model_.predict_proba(self._score(self._logged(fold, split))[:, None])[:, 1]

    def hyperparameters(self) -> dict[str, Any]:
        given = self.params.compare.marker_genes
        return {
            "signature": "given"
            if given
            else f"top {self.params.compare.marker_top_genes} up/down genes on train"
        }

    def details(self) -> dict[str, Any]:
        coef = float(self.threshold_model_.coef_[0, 0])
        return {
            "score_threshold": -float(self.threshold_model_.intercept_[0]) / coef if coef else float("nan"),
            "n_up_genes": int(self.up_.size),
            "n_down_genes": int(self.down_.size),
        }


class CellTypistCandidate(Candidate):
    """CellTypist (Domínguez Conde et al. 2022, Science) trained through ``celltypist.train``.

    Fed what CellTypist expects: log1p of counts normalised to 10,000 per cell, all
    genes; its own gene scaling and logistic regression do the rest. It is trained
    with ``use_SGD=True`` (its stochastic-gradient logistic regression, seeded):
    CellTypist 1.7.1's default solver path passes ``multi_class='ovr'``, which
    scikit-learn 1.8 removed, so that path fails with the pinned scikit-learn.
    """

    family = "celltypist"
    view = "all_genes"

    def _adata(self, fold: Fold, split: str) -> Any:
        import anndata as ad

        logged = log_normalize(fold.counts[split], 10_000.0)
        adata = ad.AnnData(X=logged.astype(np.float32))
        adata.var_names = [str(g) for g in fold.genes]
        adata.obs_names = [str(c) for c in fold.features[split].cell_ids]
        return adata

    def fit(self, fold: Fold) -> CellTypistCandidate:
        celltypist = _import_celltypist()
        labels = label_names(fold.features["train"].y)
        try:
            self.model_ = celltypist.train(
                self._adata(fold, "train"),
                labels=labels,
                use_SGD=True,
                alpha=self.params.compare.celltypist_alpha,
                check_expression=True,
                feature_selection=False,
                n_jobs=1,
                random_state=self.seed,
                class_weight=sklearn_class_weight(self.params),  # passed on to its SGDClassifier
            )
        except Exception as exc:  # CellTypist raises bare Exception/ValueError on bad input
            raise ModelError(
                f"compare: CellTypist could not train on fold {fold.name} ({exc.__class__.__name__}: {exc}); "
                "drop celltypist from compare.models to skip it"
            ) from exc
        return self

    def _annotate(self, fold: Fold, split: str) -> Any:
        celltypist = _import_celltypist()
        try:
            return celltypist.annotate(self._adata(fold, split), model=self.model_, majority_voting=False)
        except Exception as exc:
            raise ModelError(
                f"compare: CellTypist could not score fold {fold.name} ({exc.__class__.__name__}: {exc})"
            ) from exc

    def predict_proba(self, fold: Fold, split: str = "test") -> np.ndarray:
        return self._annotate(fold, split).probability_matrix[PERSISTER].to_numpy(dtype=np.float64)

    def log_odds(self, fold: Fold, split: str = "test") -> np.ndarray:
        """CellTypist's own decision score for persister (its one-vs-rest log-odds). Its probabilities
        are that score's sigmoid, and with all genes most cells' score is far enough out that the
        probability rounds to 0 or 1 in float64: the ranking lives in the score."""
        return self._annotate(fold, split).decision_matrix[PERSISTER].to_numpy(dtype=np.float64)

    def hyperparameters(self) -> dict[str, Any]:
        return {
            "alpha": self.params.compare.celltypist_alpha,
            "use_SGD": True,
            "feature_selection": False,
            "class_weight": self.params.compare.class_weight,
            "input": "log1p CP10k, all genes",
        }


def _import_celltypist() -> Any:
    """Import CellTypist quietly and without writing to ``~/.celltypist``.

    CellTypist creates its model folder at import time; point it at a temporary
    folder unless the user chose one, and keep its console chatter at warnings.
    """
    os.environ.setdefault(
        "CELLTYPIST_FOLDER", os.path.join(tempfile.gettempdir(), "oncopersistnet-celltypist")
    )
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        import celltypist
    for name in ("celltypist", "scanpy"):
        logging.getLogger(name).setLevel(logging.WARNING)
    return celltypist


def make_candidate(family: str, params: Params, seed: int) -> Candidate:
    """The candidate object of ``family`` (one of ``choices.ALL_MODEL_FAMILIES``)."""
    if family == "cnn_lstm_permuted":
        return NetworkCandidate(params, seed, permute=True)
    if family in NETWORK_ARCHITECTURES:
        return NetworkCandidate(params, seed, architecture=family)
    classes: dict[str, type[Candidate]] = {
        "logistic_regression": LogisticRegressionCandidate,
        "linear_svm": LinearSvmCandidate,
        "hist_gbm": HistGbmCandidate,
        "logistic_regression_all_genes": AllGenesLogisticCandidate,
        "linear_svm_all_genes": AllGenesSvmCandidate,
        "marker_score": MarkerScoreCandidate,
        "celltypist": CellTypistCandidate,
    }
    return classes[family](params, seed)
