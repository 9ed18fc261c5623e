"""The data a job trains on, and the model work that runs inside a sandboxed child.

:func:`prepare_data` is deterministic from the job (seeded split and folds), so any process can
rebuild it from ids. :func:`cross_validate` and :func:`refit` are the functions the tuner and the
finalizer run in a child process (:mod:`automl.sandbox`).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from automl.metrics import Metric, get_metric
from automl.model import predict_matrix
from automl.preprocessing import FeaturePlan
from automl.profile import DatasetProfile
from automl.sandbox import Channel

PRUNE = "prune"
CANCEL = "cancel"


@dataclass(frozen=True)
class JobData:
    task: str
    metric_name: str
    classes: list[Any] | None
    X: pd.DataFrame
    y: np.ndarray
    X_holdout: pd.DataFrame
    y_holdout: np.ndarray
    folds: list[tuple[np.ndarray, np.ndarray]]
    plan: FeaturePlan
    profile: DatasetProfile
    seed: int
    n_jobs: int

    @property
    def metric(self) -> Metric:
        return get_metric(self.metric_name)

    @property
    def n_classes(self) -> int:
        return len(self.classes or [])


def prepare_data(
    frame: pd.DataFrame,
    *,
    target: str,
    task: str,
    metric: str,
    plan: FeaturePlan,
    profile: DatasetProfile,
    holdout_fraction: float,
    folds: int,
    seed: int,
    n_jobs: int,
) -> JobData:
    """Split off the holdout (stratified, seeded) before anything is tuned, then make the CV folds."""
    from sklearn.model_selection import KFold, StratifiedKFold, train_test_split

    frame = frame[frame[target].notna()].reset_index(drop=True)
    features = frame.drop(columns=[target])
    raw_y = frame[target].to_numpy()
    classes: list[Any] | None = None
    if task == "regression":
        y = raw_y.astype(float)
        stratify = None
    else:
        uniques = np.unique(raw_y.astype(str)) if raw_y.dtype == object else np.unique(raw_y)
        classes = [u.item() if isinstance(u, np.generic) else u for u in uniques]
        lookup = {c: i for i, c in enumerate(classes)}
        y = np.array([lookup[v.item() if isinstance(v, np.generic) else v] for v in raw_y], dtype=int)
        stratify = y if np.bincount(y).min() >= 2 else None
    index = np.arange(len(frame))
    train_idx, hold_idx = train_test_split(
        index, test_size=holdout_fraction, random_state=seed, shuffle=True, stratify=stratify
    )
    train_idx, hold_idx = np.sort(train_idx), np.sort(hold_idx)
    X, X_hold = features.iloc[train_idx].reset_index(drop=True), features.iloc[hold_idx].reset_index(drop=True)
    y_train, y_hold = y[train_idx], y[hold_idx]
    if task == "regression" or np.bincount(y_train).min() < folds:
        splitter: Any = KFold(n_splits=folds, shuffle=True, random_state=seed)
    else:
        splitter = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    fold_list = [(np.asarray(a), np.asarray(b)) for a, b in splitter.split(X, y_train)]
    return JobData(task, metric, classes, X, y_train, X_hold, y_hold, fold_list, plan, profile, seed, n_jobs)


def build(data: JobData, family: str, params: dict[str, Any]) -> Any:
    from automl.candidates import build_estimator

    return build_estimator(family, params, data.task, data.seed, data.n_jobs, data.plan, data.profile)


def _limit_threads(n_jobs: int) -> None:
    """Cap native thread pools and keep joblib on threads: this runs in a forked child, where a
    process pool would outlive the child's hard exit."""
    import joblib
    from threadpoolctl import threadpool_limits

    if n_jobs > 0:
        threadpool_limits(n_jobs)
    joblib.parallel_config(backend="threading")


def cross_validate(channel: Channel, data: JobData, family: str, params: dict[str, Any]) -> dict[str, Any]:
    """K-fold CV of one configuration. Reports each fold; stops early when told the trial is pruned."""
    _limit_threads(data.n_jobs)
    metric = data.metric
    width = data.n_classes if data.task != "regression" else 0
    oof = np.zeros((len(data.y), width)) if width else np.zeros(len(data.y))
    scores: list[float] = []
    fit_seconds = 0.0
    for k, (train, valid) in enumerate(data.folds):
        model = build(data, family, params)
        start = time.perf_counter()
        model.fit(data.X.iloc[train], data.y[train])
        fit_seconds += time.perf_counter() - start
        prediction = predict_matrix(model, data.X.iloc[valid], data.task, data.n_classes)
        oof[valid] = prediction
        score = metric.score(data.y[valid], prediction)
        if not np.isfinite(score):
            raise ValueError(f"fold {k} scored {score}")
        scores.append(float(score))
        reply = channel.ask(("fold", k, float(score)))
        if reply in (PRUNE, CANCEL):
            return {"stopped": reply, "fold_scores": scores, "fit_seconds": fit_seconds}
    return {"stopped": None, "fold_scores": scores, "fit_seconds": fit_seconds, "oof": oof}


def refit(
    channel: Channel, data: JobData, family: str, params: dict[str, Any], artifact_root: str, key: str
) -> dict[str, Any]:
    """Fit on all training rows, save the fitted pipeline, and predict the holdout."""
    from automl.artifacts import ArtifactStore

    _limit_threads(data.n_jobs)
    model = build(data, family, params)
    start = time.perf_counter()
    model.fit(data.X, data.y)
    fit_seconds = time.perf_counter() - start
    holdout = predict_matrix(model, data.X_holdout, data.task, data.n_classes)
    sha = ArtifactStore(artifact_root).put_object(key, model)
    return {"key": key, "sha256": sha, "holdout": holdout, "fit_seconds": fit_seconds}
