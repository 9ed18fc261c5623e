"""The data a job trains on, and the model work that runs inside a sandboxed child.

:func:`prepare_data` is deterministic from the job (seeded split and folds), so any process can
rebuild it from ids. :func:`cross_validate` and :func:`refit` are the functions the tuner and the
finalizer run in a child process (:mod:`automl.sandbox`).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from automl.artifacts import ArtifactStore, object_bytes, pickled_size
from automl.metrics import Metric, get_metric
from automl.model import FoldBag, predict_matrix
from automl.preprocessing import FeaturePlan
from automl.profile import DatasetProfile, rare_classes
from automl.sandbox import Channel
from automl.validation import (
    HoldoutSplit,
    Validation,
    choose_validation,
    make_folds,
    refit_scale,
    row_keys,
    sample_rows,
    trained_rows,
    usable_split,
    validated_rows,
)

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
# On large data, a trial validated on one holdout split first trains on a sample of its rows, then on
# RUNG_GROWTH times more, up to all of them (successive halving on rows, as in Hyperband/ASHA and
# FLAML's sample-size growth): after each smaller rung it reports the rung's validation score as
# Optuna step ROWS_STEP + rung, and the median pruner stops configurations that are poor on few
# rows before they pay for many. Only when the training split has at least 2 x RUNG_FIRST_ROWS rows.
ROWS_STEP = 2000
RUNG_FIRST_ROWS = 10_000
RUNG_GROWTH = 4


def rung_scored_rows(rung_rows: int, train_rows: int, valid_rows: int) -> int:
    """The validation rows a smaller rung is scored on: the split's share of them (a rung of a tenth
    of the training rows, a tenth of the validation rows), at least half a first rung. The same rows
    for every trial, so rungs compare. Predicting every validation row would cost a small rung as
    much as its fit: on diamonds_x10 (166,666 rows a trial), LightGBM's 40,000-row rung fit in 3.4 s
    and took 3 s more to predict the 43,035 validation rows."""
    return min(valid_rows, max(RUNG_FIRST_ROWS // 2, round(valid_rows * rung_rows / max(train_rows, 1))))


def row_rungs(n_rows: int) -> list[int]:
    """The training rows of each rung for a split of ``n_rows`` (the last one is all of them)."""
    rungs: list[int] = []
    size = RUNG_FIRST_ROWS
    while size * 2 <= n_rows:
        rungs.append(size)
        size *= RUNG_GROWTH
    return [*rungs, n_rows]


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
    validation: Validation = field(default_factory=lambda: Validation("cv", 5, "5-fold cross-validation"))
    split: HoldoutSplit = field(default_factory=lambda: HoldoutSplit("seeded", 0.2, 0))
    holdout_keys: np.ndarray | None = None  # each holdout row's hash key in [0, 1)
    # The threads of the job's trials and of its final fits, where they differ from ``n_jobs`` (in
    # one process, trials run side by side on a share of the cores; refits alone, on every core).
    trial_threads: int | None = None
    final_threads: int | None = None

    @property
    def metric(self) -> Metric:
        return get_metric(self.metric_name)

    @property
    def n_classes(self) -> int:
        return len(self.classes or [])

    @property
    def validated(self) -> np.ndarray:
        """Training rows with an out-of-fold prediction (all of them under K-fold)."""
        return validated_rows(self.folds)

    @property
    def refit_scale(self) -> float:
        """A refit on every training row costs about this times a trial's summed fit seconds."""
        return refit_scale(self.folds, len(self.y))

    @property
    def predict_scale(self) -> float:
        """The holdout rows over the rows a trial's fits trained on."""
        return len(self.y_holdout) / trained_rows(self.folds)

    def predict_estimate(self, family: str, fit_s: float, per_row_s: float | None = None) -> float:
        """Seconds a trial's fit of ``family`` (``fit_s`` seconds) takes to load and predict the
        holdout rows: what predicting its validation rows took per row (``per_row_s``, where the
        trial measured it) times the holdout rows, plus the loading process's start; else its fit
        seconds per row, times the family's ``predict_cost``, times the holdout rows. LightGBM's
        trial fit on diamonds_x10 (9.2 s on 166,666 rows) took 7.6 s to load and predict the 109,050
        holdout rows.

        The measurement is the better guide: on 300,000 rows x 54 columns and seven classes,
        scikit-learn's histogram boosting fitted in 9.7 s and predicted the 60,059 holdout rows in
        0.8 s, where its fit seconds said 16 s; LightGBM's 7,000 trees took 12.3 s, and 2.3 s to
        load."""
        if per_row_s is not None:
            return per_row_s * len(self.y_holdout) / self.predict_speedup(family) + KEPT_LOAD_S
        return fit_s * self.predict_scale * predict_cost(family) / self.predict_speedup(family)

    def refit_speedup(self, family: str) -> float:
        """How much faster a ``family`` final fit runs than its trials did: the final fit has
        more threads (``final_threads`` over ``trial_threads``), of which the family's
        ``thread_gain`` turns into speed. 1 when both have the same threads."""
        from automl.candidates import get_family

        return self._speedup(get_family(family).thread_gain)

    def predict_speedup(self, family: str) -> float:
        """:meth:`refit_speedup` for a prediction in the finalizer, from the family's
        ``predict_thread_gain``: a kept trial fit is measured predicting on the trial's threads and
        predicts the holdout on the final fits' (:func:`predict_trial_model`)."""
        from automl.candidates import get_family

        return self._speedup(get_family(family).predict_thread_gain)

    def _speedup(self, gain: float) -> float:
        from automl.config import available_cores

        def resolve(threads: int | None) -> int:
            threads = self.n_jobs if threads is None else threads
            return available_cores() if threads < 1 else threads

        trial, final = resolve(self.trial_threads), resolve(self.final_threads)
        if final <= trial:
            return 1.0
        return 1.0 + gain * (final / trial - 1.0)


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
    scheme: str = "cv",
    time_budget_s: float | None = None,
    id_column: str | None = None,
) -> JobData:
    """Split off the holdout before anything is tuned, then make the validation folds: K-fold or
    one split, by ``scheme`` (``auto`` decides from the size of the training rows and
    ``time_budget_s``, see :mod:`automl.validation`).

    The holdout is drawn by a stable hash of each row (of ``id_column`` when given): the same row
    is held out whatever the seed, and in any later data set that contains it, so two jobs'
    models can be compared on rows neither trained on (see :mod:`automl.promotion`)."""
    from sklearn.model_selection import train_test_split

    frame = frame[frame[target].notna()].reset_index(drop=True)
    if task != "regression":  # classes too rare to be learned and scored: their rows are left out
        rare = rare_classes(frame[target])
        if rare:
            frame = frame[~frame[target].isin(rare)].reset_index(drop=True)
    features = frame.drop(columns=[target])
    raw_y = frame[target].to_numpy()
    classes: list[Any] | None = None
    if task == "regression":
        y = raw_y.astype(float)
        stratify = None
    else:
        # Classes in sorted order, each row's class as its index among them (labels as text).
        uniques, codes = np.unique(raw_y.astype(str) if raw_y.dtype == object else raw_y, return_inverse=True)
        classes = [u.item() if isinstance(u, np.generic) else u for u in uniques]
        y = codes.astype(int).ravel()
        stratify = y if np.bincount(y).min() >= 2 else None
    keys = row_keys(frame, id_column)
    hold_mask = keys < holdout_fraction
    split = HoldoutSplit("row-hash", holdout_fraction, int(hold_mask.sum()))
    if not usable_split(hold_mask, y if task != "regression" else None):
        # Too few rows for a stable split to serve (an empty side, or a class missing from one):
        # a seeded, stratified split instead. The promotion gate treats it as not comparable.
        index = np.arange(len(frame))
        train_idx, hold_idx = train_test_split(
            index, test_size=holdout_fraction, random_state=seed, shuffle=True, stratify=stratify
        )
        hold_mask = np.isin(index, hold_idx)
        split = HoldoutSplit("seeded", holdout_fraction, int(hold_mask.sum()))
    train_idx, hold_idx = np.flatnonzero(~hold_mask), np.flatnonzero(hold_mask)
    train_idx, hold_idx = np.sort(train_idx), np.sort(hold_idx)
    X, X_hold = features.iloc[train_idx].reset_index(drop=True), features.iloc[hold_idx].reset_index(drop=True)
    y_train, y_hold = y[train_idx], y[hold_idx]
    validation = choose_validation(len(y_train), len(plan.features), time_budget_s, scheme, folds)
    fold_list = make_folds(y_train, validation, task != "regression", seed, groups=keys[train_idx])
    return JobData(
        task, metric, classes, X, y_train, X_hold, y_hold, fold_list, plan, profile, seed, n_jobs, validation,
        split, keys[hold_idx],
    )  # fmt: skip


# The margin on a predicted time (a refit's or a prediction's) where running short costs the model:
# the finalizing reserve and the choice of a kept trial fit to register.
ESTIMATE_MARGIN = 1.5


def predict_cost(family: str) -> float:
    """The family's ``predict_cost`` (:class:`automl.candidates.base.Family`)."""
    from automl.candidates import get_family

    return get_family(family).predict_cost


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


# Under K-fold CV these families' trials keep the models their folds fitted, and a member's final
# model averages them with its refit (:class:`automl.model.FoldBag`): trees gain from the averaging
# (variance), while a linear model, k-NN, an SVM or a net would gain little for the larger model.
BAG_FAMILIES = frozenset({"hist_gradient_boosting", "lightgbm", "catboost", "xgboost", "random_forest", "extra_trees"})
# A trial keeps its folds' models only while K of them stay under this size (measured on the first
# fold's): a regression forest of 200 deep trees took 350 to 550 MB on 19,000 rows (forests now
# stop at :data:`automl.candidates.forest.FOREST_MAX_MB`), and five of them, held by the trial, sent
# to the job's process, stored, and bagged into a final model that every prediction then runs, took
# a 24,000-row job to 4.6 GB of memory. A forest averages its trees already, so it loses the
# least by the fold models' absence; boosters' take a few MB.
FOLD_MODELS_MAX_MB = 200.0
# Loading a fitted model and saving it again, per MB of its artifact: measured 0.03 s/MB for
# histogram boosting and 0.09 s/MB for LightGBM (its model is text, parsed on load); forests and
# XGBoost, whose models are arrays, 0.01 s/MB or less.
SAVE_S_PER_MB = 0.06
ARRAY_SAVE_S_PER_MB = 0.01
ARRAY_FAMILIES = frozenset({"random_forest", "extra_trees", "xgboost"})
# A refit leaves its trial's fold models out when the time before its deadline is short of this
# many times their size's save time: it loads them, predicts the holdout with each and saves them,
# then the final model's writer loads and saves them again, all before the wall (with 3 times, two
# 60 s jobs on digits, 10 classes, ended 0.8 and 1.1 s past the wall; with 6, both within it).
FOLDS_ROOM = 6.0
# After loading them, the rest of the bag's cost (predicting the holdout with each, saving them with
# the refit, then the writer's load and save) in times what the load took: a per-MB rate misses the
# per-tree cost of a small forest (penguins, 454 trees of depth 8 in five folds, 7 MB: 0.23 s to
# load and 0.6 s to save the bag, where 0.01 s/MB allowed 0.6 s for all of it, and the refit that
# went on was killed at its deadline, its member lost). Saving took 0.3 to 2.3 times loading across
# the shared sets' fold models.
BAG_LOADS_ROOM = 5.0


def save_s_per_mb(family: str) -> float:
    """Seconds to load and save again one MB of a fitted ``family`` model."""
    return ARRAY_SAVE_S_PER_MB if family in ARRAY_FAMILIES else SAVE_S_PER_MB


# Families whose fitted model is small enough to keep from a holdout-scheme trial (a forest grows
# with rows x trees; a net lives in TensorFlow's own format).
KEEP_TRIAL_MODEL = frozenset({"linear", "hist_gradient_boosting", "xgboost", "lightgbm", "catboost", "knn", "svm"})

# Starting the process that loads a trial's kept fit, beside its measured prediction.
KEPT_LOAD_S = 0.5
TF_IMPORT_S = 6.0  # importing TensorFlow in a fresh trial process, a generous estimate


def net_time_s(deadline: float, parts: int, after_s: float = 0.0) -> float:
    """Training time a neural net may take so that ``parts`` fits (and ``after_s`` of work after
    them) end by ``deadline``: its clock starts after TensorFlow is imported and the net built."""
    import sys

    left = deadline - time.monotonic() - after_s
    if "tensorflow" not in sys.modules:
        left -= TF_IMPORT_S
    return max(1.0, left / max(parts, 1))


def prediction_load(family: str, trained: int, predicted: int) -> float:
    """What predicting ``predicted`` rows costs over fitting ``trained`` rows, for ``family``: the
    ``predicted_per_trained`` of :func:`time_share_s`."""
    return predicted / max(trained, 1) * predict_cost(family)


# The margin on the predicted cost of a trial's own validation prediction in its time share. On
# 300,000 rows x 54 columns and seven classes (40,000 training rows, 24,000 validation rows, one
# thread beside another trial) LightGBM predicted at 1.6 times its fit's seconds per row against the
# 1.3 of its ``predict_cost`` (measured on diamonds_x10), and its first trial ran past its deadline.
PREDICT_SHARE_MARGIN = 1.5


def time_share_s(deadline: float, parts: int, predicted_per_trained: float = 0.0) -> float:
    """Seconds one of ``parts`` remaining fits may train so that all of them (with their
    predictions) end by ``deadline``. ``predicted_per_trained``: the rows each fit then predicts
    over the rows it trains on, times the family's ``predict_cost`` (:func:`prediction_load`), when
    that prediction is worth counting (one holdout split of large data). A boosted tree can cost
    about as much to predict per row and round as to train: LightGBM's defaults on diamonds_x10
    (141,000 rows, 1,000 rounds, one thread) trained in 9.2 s and predicted the 43,035 validation
    rows in 2.5 s; left out of the share, that prediction passed the trial's cap and the trial
    ended with nothing. The prediction is counted with :data:`PREDICT_SHARE_MARGIN`: the family's
    ``predict_cost`` is one data set's measure, and where the data has another shape the trial
    loses everything when the prediction runs long, but only some rounds when the fit stops early."""
    load = PREDICT_SHARE_MARGIN * predicted_per_trained
    return max(0.5, 0.85 * (deadline - time.monotonic()) / max(parts, 1) / (1.0 + load))


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
    keep_folds = keeps_fold_models(data, family)
    fitted: list[Any] = []
    predict_s, predicted_rows = 0.0, 0  # the folds' validation predictions: seconds and rows
    if len(data.folds) == 1 and family != "mlp":
        ramp = _ramp_rows(channel, data, family, params, deadline)
        if ramp is not None:  # stopped on a smaller rung
            ramp["work_seconds"] = time.perf_counter() - began
            return ramp
    for k, (train, valid) in enumerate(data.folds):
        model = build(data, family, params)
        watch: Any = contextlib.nullcontext()
        stopped: list[str] = []
        if family == "mlp":
            if deadline is not None:  # the net stops itself when its share of the time is used
                model.set_params(model__max_time_s=net_time_s(deadline, len(data.folds) - k))
            watch = epoch_reporter(_epoch_asker(channel, stopped) if k == 0 else None)
        elif deadline is not None and "max_time_s" in model.named_steps["model"].get_params():
            # Boosted trees stop adding rounds when their share of the time is used, and keep
            # what they have, rather than being killed with nothing. On one split (large data)
            # the share leaves room to predict its validation rows.
            predicted = prediction_load(family, len(train), len(valid)) if len(data.folds) == 1 else 0.0
            model.set_params(model__max_time_s=time_share_s(deadline, len(data.folds) - k, predicted))
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
        if keep_folds and k == 0 and pickled_size(model) * len(data.folds) > FOLD_MODELS_MAX_MB * 1e6:
            keep_folds = False  # a forest on thousands of rows: too large to keep K of (see FOLD_MODELS_MAX_MB)
        if keep_folds:
            fitted.append(model)
        start = time.perf_counter()
        prediction = predict_matrix(model, data.X.iloc[valid], data.task, data.n_classes)
        predict_s, predicted_rows = predict_s + time.perf_counter() - start, predicted_rows + len(valid)
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
    result: dict[str, Any] = {"stopped": None, "fold_scores": scores, "fit_seconds": fit_seconds,
                              "work_seconds": work, "oof": oof, "curves": curves,
                              "predict_seconds_per_row": predict_s / max(predicted_rows, 1)}  # fmt: skip
    if data.validation.scheme == "holdout" and family in KEEP_TRIAL_MODEL:
        # The one fit of this trial (the finalizer may register it as it is), as the bytes of its
        # artifact: unpickled in the parent, a booster would start OpenMP threads there and hang
        # the next forked trial that uses the same library.
        result["model_bytes"] = object_bytes(model)
    if keep_folds:  # as bytes too, for the same reason
        result["folds_bytes"] = object_bytes(fitted)
    return result


def keeps_fold_models(data: JobData, family: str) -> bool:
    """Whether a trial of ``family`` keeps its folds' models for the final model (K-fold CV)."""
    return data.validation.scheme == "cv" and len(data.folds) > 1 and family in BAG_FAMILIES


def with_fold_models(
    model: Any, data: JobData, family: str, artifact_root: str, folds: tuple[str, str] | None, deadline: float | None
) -> Any:
    """``model`` (a member's refit) averaged with its trial's fold models (``folds``: their
    artifact's key and sha256) as a :class:`FoldBag`; ``model`` itself when there are none, or when
    loading and saving them again might not end before ``deadline`` (judged by their size before
    loading them, and by the time loading took after)."""
    if folds is None:
        return model
    store = ArtifactStore(artifact_root)
    if not store.exists(folds[0]):
        return model
    size_mb = store.path(folds[0]).stat().st_size / 1e6
    if deadline is not None and deadline - time.monotonic() < FOLDS_ROOM * save_s_per_mb(family) * size_mb + 0.2:
        return model
    start = time.monotonic()
    fold_models = store.get_object(*folds)
    loaded = time.monotonic()
    if deadline is not None and deadline - loaded < BAG_LOADS_ROOM * (loaded - start) + 0.2:
        return model
    n_classes = data.n_classes if data.task != "regression" else 0
    return FoldBag(model, fold_models, n_classes)


def _ramp_rows(
    channel: Channel, data: JobData, family: str, params: dict[str, Any], deadline: float | None
) -> dict[str, Any] | None:
    """The smaller rungs of :func:`row_rungs` on the one validation split: fit on a sample, score,
    ask the parent. Returns the stopped trial's result, or None to go on to all the rows (also when
    the next rung would be too short to be worth a check)."""
    train, valid = data.folds[0]
    rungs = row_rungs(len(train))
    stratify = data.task != "regression"
    for i, size in enumerate(rungs[:-1]):
        rows = sample_rows(train, data.y, size, data.seed, stratify)
        scored = sample_rows(valid, data.y, rung_scored_rows(size, len(train), len(valid)), data.seed, stratify)
        model = build(data, family, params)
        if deadline is not None and "max_time_s" in model.named_steps["model"].get_params():
            share = time_share_s(deadline, 1, prediction_load(family, len(train), len(valid)))
            model.set_params(model__max_time_s=share * size / len(train))
        start = time.perf_counter()
        model.fit(data.X.iloc[rows], data.y[rows])
        prediction = predict_matrix(model, data.X.iloc[scored], data.task, data.n_classes)
        score = float(data.metric.score(data.y[scored], prediction))
        elapsed = time.perf_counter() - start
        if not np.isfinite(score):
            return None  # this sample cannot be scored; all the rows decide
        if elapsed * (rungs[i + 1] / size) < CHECK_MIN_REMAINING_S:
            return None  # the rest is cheap: not worth a check
        reply = channel.ask(("rung", i, score))
        if reply in (PRUNE, CANCEL):
            return {"stopped": reply, "fold_scores": [score], "fit_seconds": elapsed, "curves": None}
    return None


def _final_fit_model(
    data: JobData, family: str, params: dict[str, Any], deadline: float | None, max_fit_s: float | None = None
) -> Any:
    """The unfitted pipeline of a final fit: a net gets the time left before ``deadline`` (less
    room to predict and save); boosted trees stop adding rounds, and forests trees, there or after
    ``max_fit_s``, whichever comes first. Boosted trees fit the rounds they early-stopped at again on
    every row, whatever the rows (``refit_all``), when that fits in their time."""
    model = build(data, family, params)
    settable = model.named_steps["model"].get_params()
    if "refit_all" in settable:
        model.set_params(model__refit_all=True)
    if family == "mlp" and deadline is not None:
        room = max(1.0, 0.1 * (deadline - time.monotonic()))
        model.set_params(model__max_time_s=net_time_s(deadline, 1, after_s=room))
    elif "max_time_s" in settable:
        caps = [time_share_s(deadline, 1)] if deadline is not None else []
        caps += [max_fit_s] if max_fit_s is not None else []
        if caps:
            model.set_params(model__max_time_s=min(caps))
    return model


def refit(
    channel: Channel,
    data: JobData,
    family: str,
    params: dict[str, Any],
    artifact_root: str,
    key: str,
    deadline: float | None = None,
    max_fit_s: float | None = None,
    folds: tuple[str, str] | None = None,
) -> dict[str, Any]:
    """Fit on all training rows, save the fitted pipeline (averaged with the trial's fold models
    ``folds`` where given, see :func:`with_fold_models`), and predict the holdout. A neural net is
    given the time left before ``deadline`` (less room to predict and save) and stops there; trees
    that grow by time stop there or after ``max_fit_s``."""
    _limit_threads(data.n_jobs)
    model = _final_fit_model(data, family, params, deadline, max_fit_s)
    start = time.perf_counter()
    model.fit(data.X, data.y)
    fit_seconds = time.perf_counter() - start
    model = with_fold_models(model, data, family, artifact_root, folds, deadline)
    holdout = predict_matrix(model, data.X_holdout, data.task, data.n_classes)
    start = time.perf_counter()
    sha = ArtifactStore(artifact_root).put_object(key, model)
    return {
        "key": key,
        "sha256": sha,
        "holdout": holdout,
        "fit_seconds": fit_seconds,
        "save_s": time.perf_counter() - start,
        "bagged": isinstance(model, FoldBag),
    }


def fit_all_rows(
    channel: Channel,
    data: JobData,
    family: str,
    params: dict[str, Any],
    artifact_root: str,
    key: str,
    deadline: float | None = None,
    max_fit_s: float | None = None,
    folds: tuple[str, str] | None = None,
) -> dict[str, Any]:
    """Fit on every row the job was given (training + holdout) and save the fitted pipeline: the
    model that is registered, once the holdout has been scored with a fit that never saw it. With
    ``folds``, averaged with the trial's fold models (trained on training rows) as its refit was."""
    _limit_threads(data.n_jobs)
    X = pd.concat([data.X, data.X_holdout], ignore_index=True)
    y = np.concatenate([data.y, data.y_holdout])
    # Trees are not told the deadline here, only ``max_fit_s`` (a bound well above what the fit
    # should take): one cut short by the deadline would be a worse model than the member's fit on
    # fewer rows; past the deadline the fit is killed and the member keeps that.
    model = _final_fit_model(data, family, params, deadline if family == "mlp" else None, max_fit_s)
    start = time.perf_counter()
    model.fit(X, y)
    fit_seconds = time.perf_counter() - start
    model = with_fold_models(model, data, family, artifact_root, folds, deadline)
    sha = ArtifactStore(artifact_root).put_object(key, model)
    return {"key": key, "sha256": sha, "fit_seconds": fit_seconds, "rows": len(y), "bagged": isinstance(model, FoldBag)}


def predict_trial_model(channel: Channel, data: JobData, artifact_root: str, key: str, sha256: str) -> dict[str, Any]:
    """The holdout prediction of a model a trial fitted (on its validation split's training rows),
    in the shape :func:`refit` returns, for a member that is registered without a refit."""
    _limit_threads(data.n_jobs)
    model = ArtifactStore(artifact_root).get_object(key, sha256)
    estimator = model.named_steps["model"] if hasattr(model, "named_steps") else model
    if hasattr(estimator, "set_threads"):  # a booster keeps the trial's thread count: use the final fits'
        estimator.set_threads(data.n_jobs)
    holdout = predict_matrix(model, data.X_holdout, data.task, data.n_classes)
    return {"key": key, "sha256": sha256, "holdout": holdout, "fit_seconds": 0.0, "reused": True}


def _saved_prediction(model: Any, data: JobData, X: pd.DataFrame) -> np.ndarray:
    """A saved model's prediction (it answers in labels) as this job's matrix over its class codes;
    classes it does not know get probability 0."""
    if data.task == "regression":
        return np.asarray(model.predict(X), dtype=float)
    proba = np.asarray(model.predict_proba(X), dtype=float)
    theirs = {str(c): i for i, c in enumerate(np.asarray(model.classes_).tolist())}
    prediction = np.zeros((len(X), data.n_classes))
    for i, label in enumerate(data.classes or []):
        if str(label) in theirs:
            prediction[:, i] = proba[:, theirs[str(label)]]
    return prediction


def score_saved_model(channel: Channel, artifact_root: str, key: str, sha256: str, data: JobData) -> float:
    """Score a registered model (another job's, answering in labels) on this job's holdout with this
    job's metric. Classes it does not know get probability 0."""
    _limit_threads(data.n_jobs)
    model = ArtifactStore(artifact_root).get_object(key, sha256)
    return float(data.metric.score(data.y_holdout, _saved_prediction(model, data, data.X_holdout)))


def score_saved_models(
    artifact_root: str, models: list[tuple[str, str]], data: JobData, rows: np.ndarray
) -> list[float]:
    """Score saved models ``(key, sha256)`` on the holdout rows selected by the mask ``rows``.

    In the calling process (on one thread), not a forked child: a child forked after the parent
    ran OpenMP code on several threads hangs at its own (see
    :func:`automl.sandbox.openmp_single_threaded`)."""
    from automl.predict import single_threaded
    from automl.sandbox import openmp_single_threaded

    store = ArtifactStore(artifact_root)
    X, y = data.X_holdout[rows], data.y_holdout[rows]
    with openmp_single_threaded():
        loaded = [single_threaded(store.get_object(k, sha)) for k, sha in models]
        return [float(data.metric.score(y, _saved_prediction(model, data, X))) for model in loaded]
