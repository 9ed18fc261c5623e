"""Fit a peer AutoML system (FLAML or AutoGluon) on a split prepared by ``run_bench.py``.

Runs in the peer virtual environment (``bench/.venv-peers``), never in the engine's: FLAML pins its
own xgboost and AutoGluon its own scikit-learn and numpy. It imports nothing from ``automl``.

    bench/.venv-peers/bin/python bench/peers.py {flaml,autogluon} DIR

DIR holds what the driver wrote: ``train.parquet`` (features and the label column, class codes
0..K-1 for classification), ``holdout.parquet`` (features only) and ``meta.json`` (``task``,
``metric``, ``label``, ``n_classes``, ``budget``, ``seed``). This writes ``prediction.npy``
(an (n, K) probability matrix whose column j is class code j, or 1-D values for regression) and
``result.json`` (wall seconds of fit + predict, trials or models, best model, peak RSS in MB, the
system's version). The driver scores the prediction with the engine's own metric.
"""

from __future__ import annotations

import argparse
import json
import resource
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

# The engine's metric names, as each peer calls them (the engine's defaults first).
FLAML_METRIC = {"roc_auc": "roc_auc", "log_loss": "log_loss", "rmse": "rmse", "mae": "mae", "r2": "r2",
                "accuracy": "accuracy", "f1": "f1", "f1_macro": "macro_f1", "mape": "mape"}  # fmt: skip
AUTOGLUON_METRIC = {
    "roc_auc": "roc_auc", "log_loss": "log_loss", "rmse": "root_mean_squared_error",
    "mae": "mean_absolute_error", "r2": "r2", "accuracy": "accuracy", "balanced_accuracy": "balanced_accuracy",
    "f1": "f1", "f1_macro": "f1_macro", "mape": "mean_absolute_percentage_error",
}  # fmt: skip


def _peak_rss_mb() -> float:
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return max(own, children) / 1024.0


def _proba_matrix(proba: Any, classes: Any, n_rows: int, n_classes: int) -> np.ndarray:
    """Columns of ``proba`` (ordered as ``classes``, the class codes the model saw) placed at their
    codes in an (n, K) matrix; a class absent from the training rows keeps probability 0."""
    out = np.zeros((n_rows, n_classes))
    out[:, np.asarray(classes, dtype=int)] = np.asarray(proba, dtype=float)
    return out


def run_flaml(train: pd.DataFrame, X_hold: pd.DataFrame, meta: dict[str, Any], workdir: Path) -> tuple[Any, dict]:
    import flaml
    from flaml import AutoML

    label = meta["label"]
    X, y = train.drop(columns=[label]), train[label].to_numpy()
    X, X_hold = X.copy(), X_hold.copy()
    for frame in (X, X_hold):  # FLAML wants categoricals as pandas categories, not strings
        for col in frame.columns:
            dtype = frame[col].dtype
            if not pd.api.types.is_numeric_dtype(dtype) and not pd.api.types.is_bool_dtype(dtype):
                frame[col] = frame[col].astype("object").astype("category")
    regression = meta["task"] == "regression"
    metric = meta["metric"]
    if metric == "roc_auc" and meta["task"] == "multiclass":
        metric = "roc_auc_ovr"
    automl = AutoML()
    automl.fit(
        X, y, task="regression" if regression else "classification", metric=FLAML_METRIC.get(metric, metric),
        time_budget=meta["budget"], seed=meta["seed"], verbose=0, eval_method="cv", n_splits=5,
    )  # fmt: skip
    if regression:
        prediction = np.asarray(automl.predict(X_hold), dtype=float)
    else:
        proba = automl.predict_proba(X_hold)
        prediction = _proba_matrix(proba, automl.classes_, len(X_hold), meta["n_classes"])
    info = {
        "trials": len(getattr(automl, "config_history", {}) or {}),
        "best_family": automl.best_estimator,
        "version": flaml.__version__,
    }
    return prediction, info


def run_autogluon(train: pd.DataFrame, X_hold: pd.DataFrame, meta: dict[str, Any], workdir: Path) -> tuple[Any, dict]:
    from autogluon.tabular import TabularPredictor, __version__

    label = meta["label"]
    predictor = TabularPredictor(
        label=label, eval_metric=AUTOGLUON_METRIC.get(meta["metric"], meta["metric"]),
        problem_type=meta["task"], path=str(workdir / "autogluon"), verbosity=0,
    )  # fmt: skip
    predictor.fit(train, presets="medium_quality", time_limit=meta["budget"])
    if meta["task"] == "regression":
        prediction = np.asarray(predictor.predict(X_hold), dtype=float)
    else:
        proba = predictor.predict_proba(X_hold, as_multiclass=True)
        prediction = _proba_matrix(proba.to_numpy(), list(proba.columns), len(X_hold), meta["n_classes"])
    models = predictor.model_names()
    info = {"trials": len(models), "models": models, "best_family": predictor.model_best, "version": __version__}
    return prediction, info


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("system", choices=("flaml", "autogluon"))
    parser.add_argument("dir", type=Path)
    args = parser.parse_args()
    workdir: Path = args.dir
    meta = json.loads((workdir / "meta.json").read_text())
    train = pd.read_parquet(workdir / "train.parquet")
    X_hold = pd.read_parquet(workdir / "holdout.parquet")
    fit = {"flaml": run_flaml, "autogluon": run_autogluon}[args.system]
    start = time.monotonic()
    prediction, info = fit(train, X_hold, meta, workdir)
    wall = time.monotonic() - start
    np.save(workdir / "prediction.npy", np.asarray(prediction, dtype=float))
    result = {"wall_s": wall, **info, "peak_rss_mb": _peak_rss_mb()}
    (workdir / "result.json").write_text(json.dumps(result))


if __name__ == "__main__":
    main()
