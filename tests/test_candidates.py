"""Model families: build, fit and predict per task; search spaces; candidate selection."""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
import optuna
import pandas as pd
import pytest
from sklearn.utils.estimator_checks import parametrize_with_checks

from automl.candidates import (
    FAMILIES,
    SelectionContext,
    build_estimator,
    family_names,
    get_family,
    select_candidates,
)
from automl.candidates.svm import CalibratedSVC
from automl.errors import InputError
from automl.preprocessing import FeaturePlan, plan_features
from automl.profile import DatasetProfile, profile_frame, with_target
from tests.conftest import SHARED_DATASETS

DATASETS = str(SHARED_DATASETS)
TASKS = {
    "binary": ("titanic", "survived"),
    "multiclass": ("penguins", "species"),
    "regression": ("diabetes", "target"),
}
# Keep the suite fast: shrink the ensembles, keep every other default.
SMALL = {
    "random_forest": {"n_estimators": 20},
    "extra_trees": {"n_estimators": 20},
    "hist_gradient_boosting": {"max_iter": 20},
    "xgboost": {"n_estimators": 20},
    "lightgbm": {"n_estimators": 20},
    "catboost": {"n_estimators": 20},
}


class Task:
    def __init__(self, task: str) -> None:
        name, target = TASKS[task]
        frame = pd.read_csv(f"{DATASETS}/{name}.csv")
        self.profile: DatasetProfile = with_target(profile_frame(frame), frame, target, task)
        self.plan: FeaturePlan = plan_features(self.profile, target, [], self.profile.leaks, None)
        sample = frame.sample(n=min(260, len(frame)), random_state=0).reset_index(drop=True)
        y = sample[target]
        if task == "regression":
            self.y = y.to_numpy(dtype=float)
        else:
            # Classification targets arrive encoded 0..K-1.
            classes = sorted(frame[target].unique())
            self.y = y.map({c: i for i, c in enumerate(classes)}).to_numpy(dtype=int)
            self.classes = len(classes)
        self.X = sample.drop(columns=[target])


@pytest.fixture(scope="module")
def tasks() -> dict[str, Task]:
    return {task: Task(task) for task in TASKS}


CASES = [(name, task) for name, family in FAMILIES.items() for task in TASKS if task in family.tasks]


@pytest.mark.parametrize(("name", "task"), CASES)
def test_defaults_build_fit_and_predict(name: str, task: str, tasks: dict[str, Task]) -> None:
    data = tasks[task]
    model = build_estimator(name, SMALL.get(name, {}), task, seed=0, n_jobs=1, plan=data.plan, profile=data.profile)
    X_train, X_test = data.X.iloc[:200], data.X.iloc[200:]
    model.fit(X_train, data.y[:200])
    if task == "regression":
        pred = model.predict(X_test)
        assert pred.shape == (len(X_test),) and np.isfinite(pred).all()
    else:
        proba = model.predict_proba(X_test)
        assert proba.shape == (len(X_test), data.classes)
        np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=1e-6)


def test_native_style_marks_categoricals(tasks: dict[str, Task]) -> None:
    data = tasks["binary"]
    model = build_estimator("hist_gradient_boosting", {}, "binary", 0, 1, data.plan, data.profile)
    mask = model.named_steps["model"].categorical_features
    assert isinstance(mask, list) and any(mask) and not mask[0]
    regression = tasks["regression"]  # no categoricals: the estimator keeps its default
    model = build_estimator("hist_gradient_boosting", {}, "regression", 0, 1, regression.plan, regression.profile)
    assert model.named_steps["model"].categorical_features == "from_dtype"


@pytest.mark.parametrize(("name", "task"), CASES)
def test_defaults_enqueue_and_suggest_round_trip(name: str, task: str) -> None:
    family = FAMILIES[name]
    defaults = family.defaults(task)
    study = optuna.create_study(sampler=optuna.samplers.TPESampler(seed=0))
    study.enqueue_trial({"family": name, **{f"{name}__{k}": v for k, v in defaults.items()}})
    trial = study.ask()
    assert trial.suggest_categorical("family", family_names()) == name
    suggested = family.suggest(trial, task)
    assert suggested == defaults
    assert {type(v) for v in suggested.values()} <= {int, float, str, bool}
    # Every registered name carries the family prefix, so families share one study safely.
    assert all(key == "family" or key.startswith(f"{name}__") for key in trial.params)
    assert {key.removeprefix(f"{name}__") for key in trial.params} - {"family"} == set(defaults)


def test_sampled_params_build(tasks: dict[str, Task]) -> None:
    study = optuna.create_study(sampler=optuna.samplers.TPESampler(seed=1))
    for _ in range(3):
        trial = study.ask()
        for name, family in FAMILIES.items():
            params = family.suggest(trial, "binary")
            assert set(params) == set(family.defaults("binary"))
            build_estimator(name, params, "binary", 0, 1, tasks["binary"].plan, tasks["binary"].profile)


def test_build_rejects_prefixed_or_unknown_params(tasks: dict[str, Task]) -> None:
    data = tasks["binary"]
    with pytest.raises(InputError, match="random_forest__n_estimators"):
        build_estimator("random_forest", {"random_forest__n_estimators": 5}, "binary", 0, 1, data.plan, data.profile)
    with pytest.raises(InputError, match="tabpfn"):
        build_estimator("tabpfn", {}, "binary", 0, 1, data.plan, data.profile)


def _choices(ctx: SelectionContext, include: list[str] | None = None, exclude: Any = ()) -> dict[str, Any]:
    return {c.family: c for c in select_candidates(ctx, include, list(exclude))}


def test_family_order_and_lookup() -> None:
    assert family_names() == [
        "linear",
        "random_forest",
        "extra_trees",
        "hist_gradient_boosting",
        "xgboost",
        "lightgbm",
        "catboost",
        "knn",
        "svm",
        "mlp",
    ]
    assert get_family("svm").style == "scaled"
    assert get_family("hist_gradient_boosting").style == "native"
    with pytest.raises(InputError, match="random_forest"):
        get_family("forest")


def test_small_dataset_selects_every_family_but_the_network() -> None:
    choices = _choices(SelectionContext("binary", rows=891, features=11, categorical=6))
    network = choices.pop("mlp")
    assert not network.selected and "891 rows < 1,000" in network.reason
    assert all(c.selected for c in choices.values())
    assert "891" in choices["linear"].reason
    assert all(c.reason.startswith("selected:") for c in choices.values())
    assert _choices(SelectionContext("binary", rows=5_000, features=20, categorical=4))["mlp"].selected


def test_the_network_is_deferred_at_small_budgets_unless_included() -> None:
    ctx = SelectionContext("binary", rows=50_000, features=20, categorical=0, time_budget_s=60.0)
    network = _choices(ctx)["mlp"]
    assert not network.selected and "deferred" in network.reason and "60 s" in network.reason
    assert _choices(ctx, include=["mlp"])["mlp"].selected
    hour = SelectionContext("binary", rows=50_000, features=20, categorical=0, time_budget_s=3600.0)
    assert _choices(hour)["mlp"].selected


def test_forests_are_deferred_when_one_trial_would_take_a_large_share_of_the_budget() -> None:
    diamonds = SelectionContext("regression", rows=43_152, features=9, categorical=3, time_budget_s=60.0)
    choices = _choices(diamonds)
    for name in ("random_forest", "extra_trees"):
        assert not choices[name].selected and "deferred" in choices[name].reason
    assert choices["lightgbm"].selected and choices["catboost"].selected
    roomy = _choices(dataclasses.replace(diamonds, time_budget_s=600.0))
    assert roomy["random_forest"].selected and roomy["extra_trees"].selected
    assert _choices(diamonds, include=["random_forest"])["random_forest"].selected


def test_size_rules() -> None:
    choices = _choices(SelectionContext("regression", rows=80_000, features=20, categorical=0))
    assert not choices["svm"].selected
    assert choices["svm"].reason == "svm skipped: 80,000 rows > 10,000"
    assert not choices["knn"].selected and "80,000 rows > 50,000" in choices["knn"].reason
    assert choices["xgboost"].selected
    wide = _choices(SelectionContext("binary", rows=2_000, features=500, categorical=0))
    assert not wide["knn"].selected and "500 features > 200" in wide["knn"].reason
    assert wide["svm"].selected


def test_include_overrides_size_rules_and_exclude_wins() -> None:
    ctx = SelectionContext("binary", rows=80_000, features=20, categorical=0)
    choices = _choices(ctx, include=["svm", "linear"], exclude=["linear"])
    assert [c.family for c in select_candidates(ctx, ["svm"], [])] == family_names()
    assert choices["svm"].selected and choices["svm"].reason == "selected: included by the spec"
    assert choices["linear"].reason == "skipped: excluded by the spec"
    assert choices["xgboost"].reason == "skipped: not in candidates.include"
    excluded = _choices(SelectionContext("binary", 500, 5, 1), exclude=["xgboost"])
    assert not excluded["xgboost"].selected and excluded["random_forest"].selected


def test_nothing_selected_is_a_spec_error() -> None:
    ctx = SelectionContext("multiclass", rows=300, features=4, categorical=1)
    with pytest.raises(InputError) as info:
        select_candidates(ctx, None, family_names())
    assert info.value.code == "SPEC_INVALID"
    assert info.value.hint and "candidates" in info.value.hint
    big = SelectionContext("binary", rows=90_000, features=4, categorical=0)
    with pytest.raises(InputError) as info:
        select_candidates(big, ["linear"], ["linear"])
    assert info.value.code == "SPEC_INVALID"
    with pytest.raises(InputError, match="'tabpfn'") as info:
        select_candidates(ctx, ["tabpfn"], [])
    assert info.value.code == "SPEC_INVALID"


@parametrize_with_checks([CalibratedSVC()])  # type: ignore[untyped-decorator]
def test_calibrated_svc_is_a_conforming_estimator(estimator: Any, check: Any) -> None:
    check(estimator)


def test_calibrated_svc_copes_with_a_rare_class() -> None:
    rng = np.random.default_rng(0)
    X = rng.normal(size=(30, 3))
    y = np.array([0] * 14 + [1] * 14 + [2] * 2)
    proba = CalibratedSVC(random_state=0).fit(X, y).predict_proba(X)
    assert proba.shape == (30, 3)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0)
