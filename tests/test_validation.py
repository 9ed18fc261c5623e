"""The validation scheme: K-fold while data is small for the budget, one holdout split when large."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from automl.preprocessing import plan_features
from automl.profile import profile_frame, with_target
from automl.training import prepare_data
from automl.tuning import (
    MAX_TRIALS_AT_ONCE,
    MIN_TRIAL_S,
    TRIAL_SHARE,
    Scored,
    in_time_family,
    too_late,
    trial_deadline,
    trials_at_once,
)
from automl.validation import HOLDOUT_VALIDATION_FRACTION, Validation, choose_validation
from tests.conftest import record_fit_rounds


def _frame(rows: int, columns: int, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(rng.normal(size=(rows, columns)), columns=[f"x{i}" for i in range(columns)])
    frame["y"] = (frame["x0"] + rng.normal(scale=0.5, size=rows) > 0).astype(int)
    return frame


def _data(frame: pd.DataFrame, **kwargs: object) -> object:
    profile = with_target(profile_frame(frame), frame, "y", "binary")
    plan = plan_features(profile, "y", [], [], None)
    return prepare_data(
        frame, target="y", task="binary", metric="roc_auc", plan=plan, profile=profile,
        holdout_fraction=0.2, folds=5, seed=0, n_jobs=1, **kwargs,
    )  # fmt: skip


def test_small_data_for_the_budget_gets_k_fold() -> None:
    choice = choose_validation(800, 10, 60.0)
    assert (choice.scheme, choice.folds) == ("cv", 5)
    assert "small" in choice.reason and "60 s" in choice.reason


def test_large_data_for_the_budget_gets_one_holdout_split() -> None:
    # 43k rows x 9 columns (diamonds) is large for 60 s and small for an hour.
    choice = choose_validation(43_152, 9, 60.0)
    assert (choice.scheme, choice.folds) == ("holdout", 1)
    assert "large" in choice.reason
    assert choose_validation(43_152, 9, 3600.0).scheme == "cv"
    # Past 100k rows it is a holdout split whatever the budget; without a budget, K-fold below that.
    assert choose_validation(150_000, 3, 7 * 24 * 3600.0).scheme == "holdout"
    assert choose_validation(50_000, 30, None).scheme == "cv"


def test_trials_train_on_a_sample_when_the_budget_cannot_cover_every_row() -> None:
    from automl.validation import MIN_TRIAL_ROWS, TRIAL_CELLS_PER_SECOND, make_folds

    # 430k training rows x 9 columns at 60 s: a trial trains on 166,666 of the split's 420k rows.
    choice = choose_validation(430_000, 9, 60.0)
    assert choice.max_train_rows == TRIAL_CELLS_PER_SECOND * 60 // 9
    assert "166,666 of its 420,000 rows" in choice.reason
    assert choose_validation(430_000, 9, 3600.0).max_train_rows is None  # an hour covers them
    assert choose_validation(43_152, 9, 60.0).max_train_rows is None  # diamonds: all rows
    assert choose_validation(430_000, 500, 60.0).max_train_rows == MIN_TRIAL_ROWS  # wide: a floor
    assert choose_validation(430_000, 9, None).max_train_rows is None

    rng = np.random.default_rng(0)
    y = (rng.random(60_000) < 0.2).astype(int)
    capped = Validation("holdout", 1, "test", 45_000)
    [(train, valid)] = make_folds(y, capped, True, seed=3)
    [(full_train, full_valid)] = make_folds(y, Validation("holdout", 1, "test"), True, seed=3)
    assert len(train) == 45_000 and np.array_equal(valid, full_valid)  # the same validation rows
    assert set(train) < set(full_train) and abs(y[train].mean() - y.mean()) < 0.002  # stratified
    [(again, _)] = make_folds(y, capped, True, seed=3)
    assert np.array_equal(train, again)  # every worker draws the same sample


def test_the_validation_split_stops_growing_at_its_ceiling() -> None:
    from automl.validation import HOLDOUT_MAX_VALID_ROWS, holdout_valid_rows, make_folds

    rng = np.random.default_rng(0)
    holdout = Validation("holdout", 1, "test")
    # Up to the ceiling a tenth of the rows, as before (rounded up, as scikit-learn rounds it).
    y = (rng.random(60_001) < 0.2).astype(int)
    [(train, valid)] = make_folds(y, holdout, True, seed=3)
    assert len(valid) == holdout_valid_rows(60_001) == math.ceil(0.1 * 60_001) and len(train) + len(valid) == 60_001
    # Past it, the ceiling: every other row trains, and the split keeps the classes' shares.
    y = (rng.random(250_000) < 0.2).astype(int)
    [(train, valid)] = make_folds(y, holdout, True, seed=3)
    assert len(valid) == holdout_valid_rows(250_000) == HOLDOUT_MAX_VALID_ROWS
    assert len(train) == 250_000 - HOLDOUT_MAX_VALID_ROWS and not set(train) & set(valid)
    assert abs(y[valid].mean() - y.mean()) < 0.002
    # A capped sample of training rows is drawn from the rest, and the reason counts the rows that train.
    capped = Validation("holdout", 1, "test", 40_000)
    [(sampled, same_valid)] = make_folds(y, capped, True, seed=3)
    assert len(sampled) == 40_000 and set(sampled) < set(train) and np.array_equal(same_valid, valid)
    assert "trials train on 40,000 of its 230,000 rows" in choose_validation(240_000, 54, 60.0).reason


def test_the_spec_can_force_either_scheme() -> None:
    assert choose_validation(10, 2, 60.0, "holdout").scheme == "holdout"
    assert choose_validation(10**6, 50, 60.0, "cv", folds=3).folds == 3


def test_prepare_data_switches_with_size_and_budget() -> None:
    small = _data(_frame(500, 5), scheme="auto", time_budget_s=60.0)
    assert small.validation.scheme == "cv" and len(small.folds) == 5
    assert np.array_equal(small.validated, np.arange(len(small.y)))  # every row gets an OOF prediction
    assert small.refit_scale == pytest.approx(1 / 4, rel=0.01)

    large = _data(_frame(4_000, 40), scheme="auto", time_budget_s=10.0)
    assert large.validation.scheme == "holdout" and len(large.folds) == 1
    train, valid = large.folds[0]
    assert len(valid) == pytest.approx(HOLDOUT_VALIDATION_FRACTION * len(large.y), abs=1)
    assert not set(train) & set(valid) and len(train) + len(valid) == len(large.y)
    assert np.array_equal(large.validated, valid)
    assert large.refit_scale == pytest.approx(len(large.y) / len(train))
    # The same rows with an hour's budget are small again.
    assert _data(_frame(4_000, 40), scheme="auto", time_budget_s=3600.0).validation.scheme == "cv"


def test_rows_of_a_class_seen_once_are_left_out_with_a_warning() -> None:
    frame = _frame(300, 4)
    frame["y"] = frame["y"].map({0: "no", 1: "yes"}).astype(object)
    frame.loc[7, "y"], frame.loc[11, "y"] = "once", "also once"
    profile = with_target(profile_frame(frame), frame, "y", "multiclass")
    [warning] = [w for w in profile.warnings if "left out" in w]
    assert "'also once', 'once'" in warning and "2 row(s)" in warning
    plan = plan_features(profile, "y", [], [], None)
    data = prepare_data(
        frame, target="y", task="multiclass", metric="log_loss", plan=plan, profile=profile,
        holdout_fraction=0.2, folds=5, seed=0, n_jobs=1,
    )  # fmt: skip
    assert data.classes == ["no", "yes"]
    assert len(data.y) + len(data.y_holdout) == 298
    kept = frame.drop(index=[7, 11])
    assert sorted(pd.concat([data.X, data.X_holdout])["x0"]) == sorted(kept["x0"])


def test_a_trial_gets_at_most_a_share_of_the_time_left_and_never_passes_the_wall() -> None:
    now = 100.0
    assert trial_deadline(now, now + 40.0, None, None) == pytest.approx(now + TRIAL_SHARE * 40.0)
    # Near the end the floor applies, but never past the end of tuning.
    assert trial_deadline(now, now + 6.0, None, None) == pytest.approx(now + MIN_TRIAL_S)
    assert trial_deadline(now, now + 2.0, None, None) == pytest.approx(now + 2.0)
    # The spec's per-trial cap wins over the share; no budget means no wall.
    assert trial_deadline(now, now + 40.0, 30.0, None) == pytest.approx(now + 30.0)
    assert trial_deadline(now, math.inf, None, None) > now + 24 * 3600


def test_a_trial_whose_family_cannot_end_before_tuning_does_is_not_started() -> None:
    scored = [Scored(0.9, 12.0, "catboost"), Scored(0.8, 14.0, "catboost"), Scored(0.7, 0.3, "linear")]
    # 2 s left: a CatBoost trial (its cheapest took 12 s) would only be killed at the end.
    assert too_late("catboost", 2.0, scored)
    assert not too_late("catboost", 13.0, scored)
    assert not too_late("linear", 2.0, scored)
    # A family with no finished trial yet is started: nothing says it cannot end.
    assert not too_late("lightgbm", 0.5, scored)


def test_a_late_family_gives_way_to_the_best_family_that_can_end_in_time() -> None:
    families = ["catboost", "lightgbm", "linear", "knn"]
    scored = [
        Scored(0.95, 12.0, "catboost"),
        Scored(0.93, 3.0, "lightgbm"),
        Scored(0.91, 0.8, "lightgbm"),
        Scored(0.90, 0.3, "linear"),
    ]
    scored.append(Scored(0.92, 0.2, "knn"))
    # 5 s left: CatBoost cannot end; LightGBM, the best of the rest, can.
    assert in_time_family(families, 5.0, scored, greater_is_better=True) == "lightgbm"
    # Its cheapest trial is what counts: 1 s left still fits a 0.8 s LightGBM trial.
    assert in_time_family(families, 1.0, scored, greater_is_better=True) == "lightgbm"
    # 0.5 s left: only the k-NN and linear trials fit; the k-NN scored better.
    assert in_time_family(families, 0.5, scored, greater_is_better=True) == "knn"
    # Lower is better (a loss): the least score wins among the families that fit.
    assert in_time_family(families, 5.0, scored, greater_is_better=False) == "linear"
    # Families outside the job's candidates, and nothing that fits, give no family.
    assert in_time_family(["catboost"], 5.0, scored, greater_is_better=True) is None
    assert in_time_family(families, 0.1, scored, greater_is_better=True) is None


def test_trials_run_side_by_side_on_a_share_of_the_cores_unless_the_spec_fixes_threads_or_trials() -> None:
    # n_jobs -1, no trial cap: a trial per core, up to the maximum, the cores shared among them
    assert trials_at_once(-1, None, cores=2) == (2, 1)
    assert trials_at_once(-1, None, cores=16) == (MAX_TRIALS_AT_ONCE, 16 // MAX_TRIALS_AT_ONCE)
    assert trials_at_once(-1, None, cores=1) == (1, -1)
    # a trial cap: one at a time, so that the seed reproduces the job; the spec's own threads: one at a time
    assert trials_at_once(-1, 20, cores=8) == (1, -1)
    assert trials_at_once(3, None, cores=8) == (1, 3)
    # the setting overrides the count; a spec's own thread count stays each trial's
    assert trials_at_once(-1, 20, cores=8, asked=2) == (2, 4)
    assert trials_at_once(3, None, cores=8, asked=2) == (2, 3)
    assert trials_at_once(-1, None, cores=8, asked=1) == (1, -1)
    assert trials_at_once(-1, None, cores=2, asked=4) == (4, 1)


def test_row_rungs_grow_fourfold_from_ten_thousand_rows_up_to_all() -> None:
    from automl.training import row_rungs

    assert row_rungs(15_000) == [15_000]  # too few rows for a smaller rung
    assert row_rungs(38_800) == [10_000, 38_800]
    assert row_rungs(388_000) == [10_000, 40_000, 160_000, 388_000]


class _Parent:
    """The parent's end of a trial, in process: records what the child asks, answers ``reply``."""

    def __init__(self, reply: str) -> None:
        self.reply = reply
        self.asked: list[tuple[str, int, float]] = []

    def ask(self, message: tuple[str, int, float]) -> str:
        self.asked.append(message)
        return self.reply


@pytest.mark.parametrize("reply", ["go", "prune"])
def test_the_row_ramp_trains_later_rungs_on_more_rows_and_a_pruned_trial_stops_early(
    reply: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from automl import training

    monkeypatch.setattr(training, "CHECK_MIN_REMAINING_S", 0.0)  # ask after every rung, however quick
    data = _data(_frame(30_000, 4), scheme="holdout")
    train, valid = data.folds[0]
    assert len(train) >= 2 * training.RUNG_FIRST_ROWS
    from sklearn.pipeline import Pipeline

    fitted: list[int] = []
    fit = Pipeline.fit

    def fit_and_count(self: Pipeline, X: pd.DataFrame, y: np.ndarray, **params: object) -> Pipeline:
        fitted.append(len(X))
        return fit(self, X, y, **params)

    monkeypatch.setattr(Pipeline, "fit", fit_and_count)
    parent = _Parent(reply)
    result = training.cross_validate(parent, data, "linear", {"C": 1.0})
    assert [(kind, step) for kind, step, _ in parent.asked] == [("rung", 0)]
    assert parent.asked[0][2] > 0.8  # the rung's own validation ROC AUC, on the full validation rows
    if reply == "prune":
        assert fitted == [training.RUNG_FIRST_ROWS]
        assert result["stopped"] == "prune" and result["fold_scores"] == [parent.asked[0][2]]
    else:
        assert fitted == [training.RUNG_FIRST_ROWS, len(train)]
        assert result["stopped"] is None and len(result["oof"][valid]) == len(valid)


def test_a_smaller_rung_is_scored_on_its_share_of_the_validation_rows_the_same_for_every_trial(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from automl import training

    monkeypatch.setattr(training, "CHECK_MIN_REMAINING_S", 0.0)
    monkeypatch.setattr(training, "RUNG_FIRST_ROWS", 500)
    data = _data(_frame(30_000, 4), scheme="holdout")
    train, valid = data.folds[0]
    rungs = training.row_rungs(len(train))
    assert rungs[:3] == [500, 2_000, 8_000]
    predicted: list[list[np.ndarray]] = []
    predict = training.predict_matrix

    def predict_and_record(model: object, X: pd.DataFrame, task: str, n_classes: int) -> np.ndarray:
        predicted[-1].append(X.index.to_numpy())
        return predict(model, X, task, n_classes)

    monkeypatch.setattr(training, "predict_matrix", predict_and_record)
    for params in ({"C": 1.0}, {"C": 0.01}):
        predicted.append([])
        parent = _Parent("go")
        training.cross_validate(parent, data, "linear", params)
        assert [step for _, step, _ in parent.asked] == list(range(len(rungs) - 1))
    first, second = predicted
    # Each smaller rung on the split's share of the validation rows (at least half a first rung),
    # the last on every one.
    share = len(valid) / len(train)
    expected = [max(250, round(share * size)) for size in rungs[:-1]]
    assert expected[0] == 250 and expected[-1] > 250 and expected[-1] < len(valid)
    assert [len(rows) for rows in first] == [*expected, len(valid)]
    assert all(set(rows) <= set(data.X.index[valid]) for rows in first)
    assert all(np.array_equal(a, b) for a, b in zip(first, second, strict=True))  # comparable rung scores


def test_a_row_rung_prunes_against_every_trial_that_reached_it_not_only_the_finished_ones() -> None:
    import optuna

    from automl.training import ROWS_STEP
    from automl.tuning import RungPruner

    study = optuna.create_study(direction="minimize", pruner=RungPruner())

    def reach_rung(value: float, finish: bool) -> bool:
        trial = study.ask()
        trial.report(value, ROWS_STEP)
        pruned = trial.should_prune()
        study.tell(trial, value if finish else None, state=None if finish else optuna.trial.TrialState.PRUNED)
        return pruned

    assert reach_rung(500.0, finish=True) is False  # the first at a rung always goes on
    for value in (900.0, 800.0, 700.0):  # pruned trials: their rung scores still count
        reach_rung(value, finish=False)
    # The median of the four peers is 750: against the finished one alone (500) this would be pruned.
    assert reach_rung(600.0, finish=True) is False
    assert reach_rung(850.0, finish=False) is True


def test_a_row_rung_promotes_the_better_half_from_the_first_peer_but_each_familys_first_trial() -> None:
    import optuna

    from automl.training import ROWS_STEP
    from automl.tuning import RungPruner

    study = optuna.create_study(direction="minimize", pruner=RungPruner())
    families = optuna.distributions.CategoricalDistribution(["lightgbm", "catboost"])

    def reach_rung(family: str, value: float) -> bool:
        study.enqueue_trial({"family": family})
        trial = study.ask({"family": families})
        trial.report(value, ROWS_STEP)
        pruned = trial.should_prune()
        study.tell(trial, None if pruned else value, state=optuna.trial.TrialState.PRUNED if pruned else None)
        return pruned

    assert reach_rung("lightgbm", 500.0) is False
    # CatBoost's first trial trails LightGBM on the sample yet goes on: the ensemble needs its family.
    assert reach_rung("catboost", 560.0) is False
    # A second LightGBM behind both is pruned with only two peers (top 1 of 3 go on)...
    assert reach_rung("lightgbm", 600.0) is True
    # ...and one ahead of both goes on. Of five, the best two go on: 550 ranks third; of six, 495 second.
    assert reach_rung("lightgbm", 490.0) is False
    assert reach_rung("catboost", 550.0) is True
    assert reach_rung("catboost", 495.0) is False


def test_a_fold_step_prunes_a_trial_against_its_own_family_only() -> None:
    import optuna

    from automl.tuning import FAMILY_STARTUP, RungPruner

    study = optuna.create_study(direction="maximize", pruner=RungPruner())

    def trial_of(family: str, fold_means: list[float]) -> bool:
        study.enqueue_trial({"family": family})
        trial = study.ask({"family": optuna.distributions.CategoricalDistribution(["linear", "random_forest"])})
        for step, value in enumerate(fold_means):
            trial.report(value, step)
            if trial.should_prune():
                study.tell(trial, state=optuna.trial.TrialState.PRUNED)
                return True
        study.tell(trial, fold_means[-1])
        return False

    for _ in range(FAMILY_STARTUP + 2):  # a linear model leads by a wide margin
        assert trial_of("linear", [0.99, 0.99, 0.99]) is False
    # The forest's first trials are far below the linear median, yet run to the end: the ensemble
    # needs the family's out-of-fold predictions, and they have no peer of their own family yet.
    for value in (0.90, 0.92, 0.91):
        assert trial_of("random_forest", [value, value, value]) is False
    # Now a forest worse than the forests' median is pruned at its second fold (step 1)...
    assert trial_of("random_forest", [0.85, 0.85, 0.85]) is True
    # ...and one better than it runs on.
    assert trial_of("random_forest", [0.95, 0.95, 0.95]) is False
    # A linear trial below its own family's median is pruned, whatever the forests score.
    assert trial_of("linear", [0.98, 0.98, 0.98]) is True


@pytest.mark.parametrize(("scheme", "folds"), [("cv", 5), ("holdout", 1)])
def test_copies_of_a_row_share_one_fold(scheme: str, folds: int) -> None:
    from automl.validation import Validation, make_folds

    rng = np.random.default_rng(0)
    unique = rng.random(400)
    keys = np.concatenate([unique, unique[:120], unique[:40]])  # 160 copies of 120 rows
    y = (keys > 0.5).astype(int)
    grouped = make_folds(y, Validation(scheme, folds, "test"), True, seed=3, groups=keys)
    plain = make_folds(y, Validation(scheme, folds, "test"), True, seed=3)
    for train, valid in grouped:
        assert not set(keys[train]) & set(keys[valid])  # no row is trained on and validated on at once
    leaked = sum(len(set(keys[t]) & set(keys[v])) for t, v in plain)
    assert leaked > 0  # without the keys, copies do straddle folds
    # Every row is validated once under K-fold, and folds stay about the same size.
    if scheme == "cv":
        assert sorted(np.concatenate([v for _, v in grouped]).tolist()) == list(range(len(y)))
        sizes = [len(v) for _, v in grouped]
        assert max(sizes) - min(sizes) < 0.25 * len(y) / folds
    with pytest.raises(ValueError, match="one key per row"):  # keys of other rows are not ignored
        make_folds(y, Validation(scheme, folds, "test"), True, seed=3, groups=keys[:-1])


@pytest.mark.slow
def test_an_all_rows_refit_of_boosted_trees_is_never_cut_short(tmp_path: object) -> None:
    """Past its deadline an all-rows refit is killed and its member keeps the fit it has; it is not
    told the deadline, so it cannot end as a booster with fewer rounds than it needs."""
    import time

    from automl.artifacts import ArtifactStore
    from automl.training import fit_all_rows

    data = _data(_frame(4000, 10))
    params = {"n_estimators": 3000, "learning_rate": 0.005, "num_leaves": 64}  # well over 0.5 s of boosting
    root = str(tmp_path)
    late = fit_all_rows(None, data, "lightgbm", params, root, "late.joblib", time.monotonic() - 1.0)
    free = fit_all_rows(None, data, "lightgbm", params, root, "free.joblib", None)
    arts = ArtifactStore(root)
    late_model = arts.get_object(late["key"], late["sha256"]).named_steps["model"]
    free_model = arts.get_object(free["key"], free["sha256"]).named_steps["model"]
    assert late["rows"] == free["rows"] == len(data.y) + len(data.y_holdout)
    assert late_model.n_rounds_ == free_model.n_rounds_ > 10


@pytest.mark.parametrize("family", ["lightgbm", "catboost", "xgboost"])
def test_final_fits_refit_boosted_rounds_on_every_row_at_any_size(
    tmp_path: object, family: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A trial's booster on large data keeps the model it early-stopped on its inner split; the
    job's final fits (on the training rows, then on every row) refit those rounds on all the rows
    they are given, none held out."""
    from automl.candidates import boosting
    from automl.training import build, fit_all_rows, refit

    monkeypatch.setattr(boosting, "REFIT_MAX_ROWS", 1_000)  # the 3,200 training rows count as large
    data = _data(_frame(4000, 6))
    params = {"n_estimators": 200, "learning_rate": 0.3}
    # (training rows, validation rows or None, cap, rounds kept) of each native fit
    calls = record_fit_rounds(type(build(data, family, params).named_steps["model"]), monkeypatch)
    build(data, family, params).fit(data.X, data.y)  # as a trial fits
    assert len(calls) == 1 and calls[0][1] is not None and calls[0][0] < len(data.y)
    root = str(tmp_path)
    every = len(data.y) + len(data.y_holdout)
    for final, rows in ((refit, len(data.y)), (fit_all_rows, every)):
        calls.clear()
        final(None, data, family, params, root, f"{final.__name__}.joblib")
        assert len(calls) == 2 and calls[0][1] is not None and calls[0][0] < rows
        assert calls[1][:2] == (rows, None)


def test_final_histogram_boosting_fits_refit_on_every_row(tmp_path: object) -> None:
    """Above 10,000 rows scikit-learn's histogram boosting stops early on rows it holds out: a
    trial's fit keeps that model, the final fits fit its iterations again on all their rows."""
    from automl.artifacts import ArtifactStore
    from automl.training import build, fit_all_rows, refit

    data = _data(_frame(14_000, 4))
    params = {"learning_rate": 0.3, "max_leaf_nodes": 31, "min_samples_leaf": 20, "l2_regularization": 1e-4,
              "max_iter": 300}  # fmt: skip
    trial = build(data, "hist_gradient_boosting", params).fit(data.X, data.y).named_steps["model"]
    assert len(trial.validation_score_) > 0  # early-stopped on held-out rows
    root = str(tmp_path)
    for final in (refit, fit_all_rows):
        out = final(None, data, "hist_gradient_boosting", params, root, f"{final.__name__}.joblib")
        model = ArtifactStore(root).get_object(out["key"], out["sha256"]).named_steps["model"]
        assert model.refit_all and len(model.validation_score_) == 0  # no row held out


def test_a_final_forest_grows_its_trees_within_its_bound(tmp_path: object) -> None:
    """A forest whose trial grew few trees in its share of the time does not spend the other
    members' time growing all the trees it is configured with: its final fits stop adding trees
    at the bound the finalizer gives (refit and all-rows refit alike)."""
    import time

    from automl.artifacts import ArtifactStore
    from automl.training import fit_all_rows, refit

    data = _data(_frame(4000, 10))
    params = {"n_estimators": 5000, "max_features": "1.0", "min_samples_leaf": 1, "max_depth": 0}
    root = str(tmp_path)
    started = time.monotonic()
    bounded = refit(None, data, "random_forest", params, root, "bounded.joblib", None, 0.5)
    all_rows = fit_all_rows(None, data, "extra_trees", params, root, "all.joblib", None, 0.5)
    assert time.monotonic() - started < 60  # loose: 5,000 deep trees on 4,000 rows take far longer
    arts = ArtifactStore(root)
    for out in (bounded, all_rows):
        forest = arts.get_object(out["key"], out["sha256"]).named_steps["model"]
        assert 10 <= len(forest.estimators_) < 5000


def test_a_longer_wall_after_submission_keeps_the_jobs_folds_and_candidates(tmp_path: Any) -> None:
    """A resume may extend a job's wall (jobs.time_budget_s); the plan follows the budget the job
    was submitted with, so trials run before and after the resume are scored on the same folds."""
    from automl.artifacts import ArtifactStore
    from automl.context import load_context
    from automl.pipeline import submit_job
    from automl.spec import parse_spec
    from automl.store import open_store

    frame = _frame(54_000, 9)
    assert choose_validation(43_200, 9, 60.0).scheme == "holdout"
    assert choose_validation(43_200, 9, 3600.0).scheme == "cv"
    frame.to_csv(tmp_path / "wide.csv", index=False)
    raw = {
        "spec_version": 1, "name": "resumed", "task": "classification", "seed": 0,
        "dataset": {"path": "wide.csv", "target": "y"}, "budget": {"time_s": 60},
    }  # fmt: skip
    store = open_store(f"sqlite:///{tmp_path / 'store.db'}")
    arts = ArtifactStore(tmp_path / "art")
    job = submit_job(store, arts, parse_spec(raw, base_dir=tmp_path))
    before = load_context(store, arts, job.id)
    store.update_job(job.id, time_budget_s=3600.0)  # what `automl jobs resume --time 3540` writes
    after = load_context(store, arts, job.id)
    assert before.data.validation == after.data.validation
    assert before.data.validation.scheme == "holdout"
    assert len(before.data.folds) == len(after.data.folds) == 1
    (train_before, valid_before), (train_after, valid_after) = before.data.folds[0], after.data.folds[0]
    assert np.array_equal(train_before, train_after) and np.array_equal(valid_before, valid_after)
    assert before.families == after.families


def _trial_run(family: str, fit_s: float) -> Any:
    """A succeeded trial of ``family`` whose folds' fits took ``fit_s`` seconds in all."""
    from automl.store.records import RunRecord

    return RunRecord(
        id=1, job_id=1, kind="trial", trial_number=0, family=family, params={}, status="succeeded",
        cv_score=0.9, cv_std=None, fold_scores=None, holdout_score=None, fit_seconds=fit_s, members=None,
        oof_uri=None, model_uri=None, model_sha256=None, error_code=None, error_message=None, worker=None,
        heartbeat_at=None, started_at=None,  # type: ignore[arg-type]
        finished_at=None,
    )  # fmt: skip


def test_a_refit_on_more_threads_than_its_trials_is_estimated_faster_by_its_family_gain() -> None:
    import dataclasses

    from automl.candidates import get_family
    from automl.finalize import refit_estimate

    data = _data(_frame(500, 4))
    # Trials alone on the final fits' threads (the fleet, a spec's own n_jobs): no speed-up.
    assert data.refit_speedup("catboost") == 1.0
    shared = dataclasses.replace(data, n_jobs=1, trial_threads=1, final_threads=4)
    gain = get_family("random_forest").thread_gain
    assert shared.refit_speedup("random_forest") == pytest.approx(1 + 3 * gain)
    # A family that fits on one thread gains nothing; more threads for trials than refits neither.
    assert shared.refit_speedup("knn") == 1.0
    assert dataclasses.replace(data, trial_threads=4, final_threads=2).refit_speedup("random_forest") == 1.0

    # The finalizer's estimate: trials on one thread each, the refit on four.
    final = dataclasses.replace(data, n_jobs=4, trial_threads=1)
    forest, knn = _trial_run("random_forest", 10.0), _trial_run("knn", 10.0)
    assert refit_estimate(forest, final) == pytest.approx(refit_estimate(forest, data) / (1 + 3 * gain))
    assert refit_estimate(knn, final) == refit_estimate(knn, data)


def test_a_kept_fit_predicts_on_the_final_fits_threads_and_is_priced_so(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import dataclasses

    import automl.training as training
    from automl.artifacts import ArtifactStore
    from automl.training import KEPT_LOAD_S, build, predict_trial_model

    data = _data(_frame(3_000, 4), scheme="holdout")
    # Trials on one thread each, the finalizer on two: trees spread a prediction over threads.
    final = dataclasses.replace(data, n_jobs=2, trial_threads=1, final_threads=2)
    assert final.predict_speedup("lightgbm") == pytest.approx(1.8) and final.predict_speedup("linear") == 1.0
    expected = 1e-3 * len(data.y_holdout) / 1.8 + KEPT_LOAD_S
    assert final.predict_estimate("lightgbm", 5.0, 1e-3) == pytest.approx(expected)
    assert final.predict_estimate("linear", 5.0, 1e-3) == data.predict_estimate("linear", 5.0, 1e-3)

    seen: list[Any] = []
    predict = training.predict_matrix

    def watching(model: Any, *args: Any) -> Any:
        seen.append(model.named_steps["model"].model_)
        return predict(model, *args)

    arts = ArtifactStore(tmp_path)
    train, _ = data.folds[0]
    for family, threads in (("lightgbm", lambda m: m.n_jobs), ("xgboost", _xgb_threads)):
        model = build(data, family, {"n_estimators": 20})  # fitted in a trial, on one thread
        model.fit(data.X.iloc[train], data.y[train])
        sha = arts.put_object(f"{family}.joblib", model)
        with monkeypatch.context() as patched:
            patched.setattr(training, "predict_matrix", watching)
            out = predict_trial_model(None, final, str(arts.root), f"{family}.joblib", sha)  # type: ignore[arg-type]
        assert threads(seen[-1]) == 2, family
        assert np.allclose(out["holdout"], predict(model, data.X_holdout, data.task, data.n_classes))


def _xgb_threads(booster: Any) -> int:
    import json

    return int(json.loads(booster.save_config())["learner"]["generic_param"]["nthread"])


def test_the_reserve_keeps_time_for_the_best_trials_refit_before_cheaper_ones() -> None:
    import time

    from automl.training import KEPT_LOAD_S
    from automl.tuning import TuneLimits, TuneProgress, reserve_seconds

    limits = TuneLimits(wall_end=time.monotonic() + 60, trial_cap=None, trial_time_s=None, ensemble_size=5)
    progress = TuneProgress(started=time.monotonic(), wall_s=60.0)
    # The best trial is a 10 s boosting fit; two cheaper, worse families lead the others.
    scored = [Scored(0.70, 10.0, "hist_gradient_boosting"), Scored(0.80, 6.0, "svm"), Scored(0.90, 5.0, "catboost")]
    fixed = 1.5 + 0.02 * 60
    kept = reserve_seconds(progress, 1.0, limits, False, scored)
    # The best trial's refit (1.5 x 10 s) is kept first; the cheapest of the others that fit after it.
    assert kept == pytest.approx(fixed + 15.0)
    # Its trials ran on one thread of two: its refit on both is faster, and the next one fits too.
    faster = reserve_seconds(progress, 1.0, limits, False, scored, lambda family: 1.5)
    assert faster == pytest.approx(fixed + 10.0 + 5.0)
    # A best refit longer than the cap is not waited for; the others are kept.
    slow = [Scored(0.70, 40.0, "hist_gradient_boosting"), Scored(0.80, 6.0, "svm"), Scored(0.90, 5.0, "catboost")]
    assert reserve_seconds(progress, 1.0, limits, False, slow) == pytest.approx(fixed + 7.5 + 9.0)
    # Registered as its trial fitted it, it still predicts the holdout rows (a tenth of its fit's time).
    predicted = reserve_seconds(
        progress, 1.0, limits, False, slow, predict_s=lambda family, fit_s, per_row: 0.1 * fit_s
    )
    assert predicted == pytest.approx(fixed + 1.5 * 40.0 * 0.1 + 7.5)
    # Where its trial measured its prediction, the measurement is what is kept (and, being less, it
    # leaves room under the cap for both other refits).
    measured = [slow[0]._replace(predict_s_per_row=1e-4), *slow[1:]]
    data = _data(_frame(30_000, 4), scheme="holdout")
    from_trial = reserve_seconds(progress, 1.0, limits, False, measured, predict_s=data.predict_estimate)
    assert from_trial == pytest.approx(fixed + 1.5 * (1e-4 * len(data.y_holdout) + KEPT_LOAD_S) + 7.5 + 9.0)
    # That prediction is kept back up to half the wall, as a refit would be.
    half = reserve_seconds(progress, 1.0, limits, False, slow, predict_s=lambda family, fit_s, per_row: 0.5 * fit_s)
    assert half == pytest.approx(30.0)
    # One past the others' cap (a third of the wall or so) but within half the wall is kept, alone.
    slower = [Scored(0.70, 16.0, "hist_gradient_boosting"), Scored(0.80, 1.0, "svm"), Scored(0.90, 1.0, "catboost")]
    assert reserve_seconds(progress, 1.0, limits, False, slower) == pytest.approx(fixed + 24.0)


def test_the_fallback_registers_the_best_kept_trial_fit_that_can_predict_the_holdout_in_time() -> None:
    import dataclasses

    from automl.finalize import kept_fit_in_time

    data = _data(_frame(30_000, 4), scheme="holdout")
    assert 0.2 < data.predict_scale < 0.4  # holdout rows over the trial's training rows
    # A fit's prediction costs its fit seconds per row times the family's predict cost.
    assert data.predict_estimate("lightgbm", 10.0) == pytest.approx(10.0 * data.predict_scale * 1.3)
    assert data.predict_estimate("catboost", 10.0) < 0.1 * data.predict_estimate("lightgbm", 10.0)
    # Best first: slow boosting fits (CatBoost's oblivious trees predict quickly), a quicker one, a linear fit.
    fits = [("lightgbm", 40.0), ("catboost", 40.0), ("xgboost", 5.0), ("linear", 1.0)]
    kept = [
        dataclasses.replace(_trial_run(family, fit_s), id=i, model_uri=f"trial-{i}.joblib")
        for i, (family, fit_s) in enumerate(fits)
    ]
    assert kept_fit_in_time(kept, data, 30.0).family == "lightgbm"
    assert kept_fit_in_time(kept, data, 5.0).family == "catboost"  # the best one that still fits
    assert kept_fit_in_time(kept[2:], data, 1.0).family == "xgboost"
    assert kept_fit_in_time(kept[2:], data, 0.1).family == "linear"  # none fits: the quickest


def test_a_kept_fit_is_priced_by_the_prediction_its_trial_measured() -> None:
    import dataclasses

    from automl.finalize import kept_fit_in_time, kept_predict_estimate
    from automl.training import KEPT_LOAD_S

    data = _data(_frame(30_000, 4), scheme="holdout")
    # Histogram boosting on wide data: slow to fit, quick to predict. From its fit seconds its
    # prediction looks dear; its trial measured 2 microseconds a row.
    hgb = dataclasses.replace(_trial_run("hist_gradient_boosting", 40.0), id=1, model_uri="trial-1.joblib")
    measured = dataclasses.replace(hgb, predict_seconds_per_row=2e-6)
    modelled = data.predict_estimate("hist_gradient_boosting", 40.0)
    assert kept_predict_estimate(hgb, data) == pytest.approx(1.5 * modelled)
    assert kept_predict_estimate(measured, data) == pytest.approx(1.5 * (2e-6 * len(data.y_holdout) + KEPT_LOAD_S))
    # Short of time, the measured one is still taken over a worse CatBoost fit that predicts fast.
    catboost = dataclasses.replace(_trial_run("catboost", 40.0), id=2, model_uri="trial-2.joblib")
    assert kept_fit_in_time([hgb, catboost], data, 2.0).family == "catboost"
    assert kept_fit_in_time([measured, catboost], data, 2.0) is measured
    # A slow measured prediction is priced as such.
    slow = dataclasses.replace(hgb, predict_seconds_per_row=1e-3)
    assert kept_fit_in_time([slow, catboost], data, 2.0).family == "catboost"


def test_a_kept_fit_costs_its_prediction_or_its_refit_whichever_is_less() -> None:
    import dataclasses

    from automl.finalize import kept_predict_estimate, member_estimate, refit_estimate

    data = _data(_frame(30_000, 4), scheme="holdout")
    lightgbm = _trial_run("lightgbm", 40.0)
    kept = dataclasses.replace(lightgbm, model_uri="trial-1.joblib")
    # Without a kept fit the member costs its refit; with one, also no more than predicting the holdout.
    assert member_estimate(lightgbm, data) == refit_estimate(lightgbm, data)
    assert kept_predict_estimate(kept, data) < refit_estimate(kept, data)
    assert member_estimate(kept, data) == kept_predict_estimate(kept, data) > 0.0
    # A cheap family's refit can cost less than predicting with its kept fit.
    linear = dataclasses.replace(_trial_run("linear", 0.01), model_uri="trial-2.joblib")
    assert member_estimate(linear, data) == min(refit_estimate(linear, data), kept_predict_estimate(linear, data))


def test_the_model_card_counts_the_rows_each_member_learned_from() -> None:
    import dataclasses

    from automl.finalize import _rows_of

    data = _data(_frame(500, 4))
    train, every, split = len(data.y), len(data.y) + len(data.y_holdout), len(data.folds[0][0])
    runs = [dataclasses.replace(_trial_run("lightgbm", 1.0), id=i) for i in range(1, 6)]
    # Two members refit on every row, one kept its trial's fit (holdout scheme), two the training rows.
    fitted = [(run, 0.2, {"reused": run.id == 3}) for run in runs]
    assert _rows_of(fitted, {1: {}, 5: {}}, data) == (
        f"2 of 5 members on every row ({every:,}), 2 on the {train:,} training rows and 1 on the {split:,} rows "
        "of its trial's training split (no time left to refit them)"
    )
    assert _rows_of(fitted, {}, data) == (
        f"the {train:,} training rows, and for 1 of 5 members the {split:,} rows of its trial's training split "
        f"(no time left to refit on all {every:,} rows)"
    )
    assert _rows_of(fitted, {run.id: {} for run in runs}, data).startswith(f"every row: {every:,}")
