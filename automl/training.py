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
# After a fold, the child asks the parent whether to go on (pruned? cancelled?) only when the folds
# still to run are expected to take at least this long: a check costs a few store round trips
# (tens of milliseconds), which is not worth paying to save less than this.
CHECK_MIN_REMAINING_S = 1.0
# A neural net also reports its validation loss at these epochs of its first fold, as Optuna step
# EPOCH_STEP + epoch (apart from the fold steps 0..K-1), so the pruner compares nets with nets at
# the same epoch. Fixed checkpoints, not every epoch: each report is a round trip to the store.
EPOCH_STEP = 1000
EPOCH_CHECKPOINTS = frozenset({5, 10, 20, 40, 80, 160})


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


def worth_checking(fold: int, folds: int, elapsed_s: float) -> bool:
    """Whether to ask the parent after ``fold`` (0-based): only when the remaining folds, at the
    pace so far, are expected to take at least :data:`CHECK_MIN_REMAINING_S`."""
    remaining = folds - fold - 1
    return remaining > 0 and elapsed_s / (fold + 1) * remaining >= CHECK_MIN_REMAINING_S


TF_IMPORT_S = 6.0  # importing TensorFlow in a fresh trial process, a generous estimate


def net_time_s(deadline: float, parts: int, after_s: float = 0.0) -> float:
    """Training time a neural net may take so that ``parts`` fits (and ``after_s`` of work after
    them) end by ``deadline``: its clock starts after TensorFlow is imported and the net built."""
    import sys

    left = deadline - time.monotonic() - after_s
    if "tensorflow" not in sys.modules:
        left -= TF_IMPORT_S
    return max(1.0, left / max(parts, 1))


def _epoch_asker(channel: Channel, stopped: list[str]) -> Any:
    """The MLP's epoch reporter: at each checkpoint, send ``("epoch", epoch, val_loss)`` and stop
    training when the reply is prune or cancel."""

    def report(epoch: int, logs: dict[str, float]) -> bool:
        if epoch not in EPOCH_CHECKPOINTS:
            return False
        reply = channel.ask(("epoch", epoch, float(logs.get("val_loss", float("nan")))))
        if reply in (PRUNE, CANCEL):
            stopped.append(reply)
            return True
        return False

    return report


def cross_validate(
    channel: Channel, data: JobData, family: str, params: dict[str, Any], deadline: float | None = None
) -> dict[str, Any]:
    """K-fold CV of one configuration. After a fold, when the rest of the trial is long enough to be
    worth it (:func:`worth_checking`), sends ``("fold", k, scores so far)`` and stops when the reply
    says the trial is pruned or the job cancelled. A neural net (family ``mlp``) also reports its
    first fold's epochs (:data:`EPOCH_CHECKPOINTS`), gets a share of the time left before
    ``deadline`` (a ``time.monotonic()`` instant) per fold, and returns that fold's learning curve."""
    import contextlib

    from automl.candidates.mlp import epoch_reporter

    _limit_threads(data.n_jobs)
    metric = data.metric
    width = data.n_classes if data.task != "regression" else 0
    oof = np.zeros((len(data.y), width)) if width else np.zeros(len(data.y))
    scores: list[float] = []
    fit_seconds = 0.0
    began = time.perf_counter()
    curves: list[dict[str, Any]] | None = None
    for k, (train, valid) in enumerate(data.folds):
        model = build(data, family, params)
        watch: Any = contextlib.nullcontext()
        stopped: list[str] = []
        if family == "mlp":
            if deadline is not None:  # the net stops itself when its share of the time is used
                model.set_params(model__max_time_s=net_time_s(deadline, len(data.folds) - k))
            watch = epoch_reporter(_epoch_asker(channel, stopped) if k == 0 else None)
        start = time.perf_counter()
        with watch:
            model.fit(data.X.iloc[train], data.y[train])
        fit_seconds += time.perf_counter() - start
        if family == "mlp" and k == 0:
            curves = list(model.named_steps["model"].history_)
        if stopped:
            work = time.perf_counter() - began
            return {"stopped": stopped[0], "fold_scores": scores, "fit_seconds": fit_seconds, "work_seconds": work,
                    "curves": curves}  # fmt: skip
        prediction = predict_matrix(model, data.X.iloc[valid], data.task, data.n_classes)
        oof[valid] = prediction
        score = metric.score(data.y[valid], prediction)
        if not np.isfinite(score):
            raise ValueError(f"fold {k} scored {score}")
        scores.append(float(score))
        if not worth_checking(k, len(data.folds), time.perf_counter() - began):
            continue
        reply = channel.ask(("fold", k, list(scores)))
        if reply in (PRUNE, CANCEL):
            work = time.perf_counter() - began
            return {"stopped": reply, "fold_scores": scores, "fit_seconds": fit_seconds, "work_seconds": work,
                    "curves": curves}  # fmt: skip
    work = time.perf_counter() - began
    return {"stopped": None, "fold_scores": scores, "fit_seconds": fit_seconds, "work_seconds": work, "oof": oof,
            "curves": curves}  # fmt: skip


def refit(
    channel: Channel,
    data: JobData,
    family: str,
    params: dict[str, Any],
    artifact_root: str,
    key: str,
    deadline: float | None = None,
) -> dict[str, Any]:
    """Fit on all training rows, save the fitted pipeline, and predict the holdout. A neural net is
    given the time left before ``deadline`` (less room to predict and save) and stops there."""
    from automl.artifacts import ArtifactStore

    _limit_threads(data.n_jobs)
    model = build(data, family, params)
    if family == "mlp" and deadline is not None:
        room = max(1.0, 0.1 * (deadline - time.monotonic()))
        model.set_params(model__max_time_s=net_time_s(deadline, 1, after_s=room))
    start = time.perf_counter()
    model.fit(data.X, data.y)
    fit_seconds = time.perf_counter() - start
    holdout = predict_matrix(model, data.X_holdout, data.task, data.n_classes)
    sha = ArtifactStore(artifact_root).put_object(key, model)
    return {"key": key, "sha256": sha, "holdout": holdout, "fit_seconds": fit_seconds}


def score_saved_model(channel: Channel, artifact_root: str, key: str, sha256: str, data: JobData) -> float:
    """Score a registered model (another job's, answering in labels) on this job's holdout with this
    job's metric. Classes it does not know get probability 0."""
    from automl.artifacts import ArtifactStore

    _limit_threads(data.n_jobs)
    model = ArtifactStore(artifact_root).get_object(key, sha256)
    if data.task == "regression":
        prediction = np.asarray(model.predict(data.X_holdout), dtype=float)
    else:
        proba = np.asarray(model.predict_proba(data.X_holdout), dtype=float)
        theirs = {str(c): i for i, c in enumerate(np.asarray(model.classes_).tolist())}
        prediction = np.zeros((len(data.X_holdout), data.n_classes))
        for i, label in enumerate(data.classes or []):
            if str(label) in theirs:
                prediction[:, i] = proba[:, theirs[str(label)]]
    return float(data.metric.score(data.y_holdout, prediction))
