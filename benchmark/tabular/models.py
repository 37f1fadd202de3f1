"""Tabular models: seeded scikit-learn classifiers behind one small adapter, :class:`TabularModel`.

``train_model("random_forest", "fetal-health", seed=0)`` fits the model on the table's seeded,
stratified training part and scores it on the test part (accuracy, per-class and macro F1 in
``model.info``). The seed study 000 gives no hyperparameters for its random forest, so it is
scikit-learn's default (100 trees, Gini, unlimited depth, sqrt(F) features per split), seeded.

No disk cache: measured on the shared 2-core development machine, the three models fit on the
1,700 training rows in 0.6-0.7 s (forest), 2.3-2.8 s (boosting) and 2.6-3.9 s (MLP), seconds a
cache would save at the price of pickles (the only way to store a scikit-learn model whole). Fits are memoised per process by
:func:`train_model`'s arguments (the key hashes the data, the parameters, the seed, :data:`VERSION`
and scikit-learn's version).

Every explainer and metric sees a model through ``outputs(rows [B,F] float64) -> [B,C] float64``
(class probabilities for classifiers) and ``background`` (a seeded sample of training rows);
``estimator`` is the fitted scikit-learn object (TreeExplainer reads its trees), or None.
"""

from __future__ import annotations

import functools
import hashlib
import json
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import sklearn
from sklearn.ensemble import GradientBoostingClassifier, RandomForestClassifier
from sklearn.exceptions import ConvergenceWarning
from sklearn.metrics import accuracy_score, f1_score
from sklearn.neural_network import MLPClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from benchmark.tabular.data import load_table

# Bump when a change here changes the fitted models a key gives.
VERSION = "1"
BACKGROUND_SIZE = 100


def _random_forest(seed: int) -> Any:
    return RandomForestClassifier(n_estimators=100, random_state=seed, n_jobs=1)


def _gradient_boosting(seed: int) -> Any:
    return GradientBoostingClassifier(random_state=seed)


def _mlp(seed: int) -> Any:
    # A small MLP on standardised features (an MLP on raw CTG scales does not train).
    return make_pipeline(
        StandardScaler(),
        MLPClassifier(hidden_layer_sizes=(32, 16), max_iter=600, random_state=seed),
    )


# name -> (builder from a seed, tags). "tree" marks ensembles whose trees shap can read.
MODELS: dict[str, tuple[Callable[[int], Any], tuple[str, ...]]] = {
    "random_forest": (_random_forest, ("tree",)),
    "gradient_boosting": (_gradient_boosting, ("tree",)),
    "mlp": (_mlp, ()),
}


@dataclass
class TabularModel:
    """A fitted model as explainers and metrics see it (see the module docstring)."""

    name: str
    estimator: Any
    background: np.ndarray  # float64 [M, F]: a seeded sample of the training rows
    n_classes: int
    tags: tuple[str, ...] = ()
    info: dict[str, Any] = field(default_factory=dict)
    key: str = ""

    def outputs(self, rows: np.ndarray) -> np.ndarray:
        """[B,F] -> class probabilities [B,C] float64."""
        return np.asarray(self.estimator.predict_proba(np.asarray(rows, np.float64)), np.float64)

    def target_outputs(self, rows: np.ndarray, targets: np.ndarray) -> np.ndarray:
        """The target class's output of each row, [B]."""
        return self.outputs(rows)[np.arange(len(rows)), np.asarray(targets)]


def model_key(name: str, data_sha256: str, seed: int, params: dict[str, Any]) -> str:
    text = json.dumps(
        [name, data_sha256, seed, params, VERSION, sklearn.__version__], sort_keys=True, default=str
    )
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def fit_model(
    name: str,
    x_train: np.ndarray,
    y_train: np.ndarray,
    x_test: np.ndarray,
    y_test: np.ndarray,
    *,
    seed: int = 0,
    class_names: tuple[str, ...] | None = None,
    background_size: int = BACKGROUND_SIZE,
) -> TabularModel:
    """Fit model ``name`` of :data:`MODELS` and score it on the test rows."""
    if name not in MODELS:
        raise KeyError(f"unknown tabular model {name!r}; known: {', '.join(MODELS)}")
    build, tags = MODELS[name]
    estimator = build(seed)
    start = time.perf_counter()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ConvergenceWarning)
        estimator.fit(x_train, y_train)
    seconds = time.perf_counter() - start
    converged = not any(issubclass(w.category, ConvergenceWarning) for w in caught)
    n_classes = int(max(y_train.max(), y_test.max())) + 1
    predicted = estimator.predict(x_test)
    f1 = f1_score(y_test, predicted, average=None, labels=np.arange(n_classes), zero_division=0)
    names = class_names or tuple(str(c) for c in range(n_classes))
    rng = np.random.default_rng(seed)
    chosen = rng.choice(len(x_train), size=min(background_size, len(x_train)), replace=False)
    data_sha = hashlib.sha256(
        x_train.tobytes() + y_train.tobytes() + x_test.tobytes() + y_test.tobytes()
    ).hexdigest()
    params = estimator.get_params()
    info = {
        "name": name,
        "params": {k: v for k, v in params.items() if not hasattr(v, "get_params")},
        "seed": seed,
        "train_rows": len(x_train),
        "test_rows": len(x_test),
        "test_accuracy": float(accuracy_score(y_test, predicted)),
        "test_f1": {n: float(v) for n, v in zip(names, f1, strict=True)},
        "test_macro_f1": float(np.mean(f1)),
        "train_seconds": round(seconds, 3),
        "converged": converged,  # False where an iterative fit (the MLP) hit its max_iter
        "sklearn": sklearn.__version__,
        "version": VERSION,
    }
    key = model_key(name, data_sha, seed, info["params"])
    info["key"] = key
    return TabularModel(
        name, estimator, np.array(x_train[chosen], np.float64), n_classes, tags, info, key
    )


@functools.lru_cache(maxsize=16)
def train_model(
    name: str, table: str = "fetal-health", seed: int = 0, data_dir: str | None = None
) -> TabularModel:
    """Model ``name`` fitted on the seeded split of ``table`` (memoised per process)."""
    data = load_table(table, data_dir)
    split = data.split(seed)
    x_train, y_train, _ = split.part("train")
    x_test, y_test, _ = split.part("test")
    model = fit_model(
        name, x_train, y_train, x_test, y_test, seed=seed, class_names=data.class_names
    )
    model.info["dataset"] = table
    model.info["data_sha256"] = data.sha256
    return model


__all__ = ["MODELS", "TabularModel", "fit_model", "model_key", "train_model"]
