"""The job's sampler draws what Optuna's TPE draws, reading the study once per trial, not once per
parameter group."""

from __future__ import annotations

import math
import warnings
from pathlib import Path
from typing import Any

import optuna
import pytest

from automl.tuning import ReadOnceTPESampler

FAMILIES = ["boost", "forest", "linear"]


def _draw(trial: optuna.Trial) -> dict[str, Any]:
    """A search space conditional on the family, as the job's is."""
    family = trial.suggest_categorical("family", FAMILIES)
    if family == "boost":
        return {
            "family": family,
            "rate": trial.suggest_float("boost.rate", 1e-3, 1.0, log=True),
            "leaves": trial.suggest_int("boost.leaves", 4, 256, log=True),
            "rounds": trial.suggest_int("boost.rounds", 10, 1000, log=True),
        }
    if family == "forest":
        return {
            "family": family,
            "features": trial.suggest_float("forest.features", 0.1, 1.0),
            "leaf": trial.suggest_int("forest.leaf", 1, 20),
        }
    return {"family": family, "C": trial.suggest_float("linear.C", 1e-3, 1e3, log=True)}


def _loss(params: dict[str, Any]) -> float:
    numbers = [math.log(abs(float(v)) + 1.0) for k, v in params.items() if k != "family"]
    return FAMILIES.index(params["family"]) + sum((n - 1.0) ** 2 for n in numbers)


def _run(sampler: optuna.samplers.BaseSampler, url: str, trials: int) -> tuple[list[dict[str, Any]], list[int]]:
    """Draw ``trials`` trials with one other trial always running (as two trial slots leave it),
    and count the study's reads of all its trials for each draw."""
    storage = optuna.storages.RDBStorage(url)
    study = optuna.create_study(storage=storage, sampler=sampler)
    backend = study._storage
    reads = 0
    read = backend.get_all_trials

    def counted(*args: Any, **kwargs: Any) -> Any:
        nonlocal reads
        reads += 1
        return read(*args, **kwargs)

    backend.get_all_trials = counted  # type: ignore[method-assign]
    drawn, per_trial = [], []
    running = study.ask()
    running_params = _draw(running)
    for _ in range(trials):
        reads = 0
        trial = study.ask()
        params = _draw(trial)
        per_trial.append(reads)
        study.tell(running, _loss(running_params))
        drawn.append(running_params)
        running, running_params = trial, params
    return drawn, per_trial


def test_the_sampler_draws_as_optunas_tpe_with_one_read_of_the_study_per_trial(tmp_path: Path) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        options: dict[str, Any] = {"seed": 3, "multivariate": True, "group": True, "constant_liar": True}
        plain, plain_reads = _run(optuna.samplers.TPESampler(**options), f"sqlite:///{tmp_path / 'a.db'}", 40)
        ours, our_reads = _run(ReadOnceTPESampler(**options), f"sqlite:///{tmp_path / 'b.db'}", 40)
    assert ours == plain  # the same parameters, trial by trial
    assert {p["family"] for p in ours} == set(FAMILIES)
    late = slice(15, None)  # once TPE models the study (after its startup trials)
    assert max(our_reads[late]) <= 2, our_reads
    assert sum(plain_reads[late]) >= 2 * sum(our_reads[late]), (plain_reads, our_reads)


@pytest.mark.parametrize("running_first", [True, False])
def test_a_running_trial_is_seen_by_the_draw_that_follows_it(
    tmp_path: Path, running_first: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The constant liar still sees trials started since the last draw: the per-draw cache is
    cleared by every ask."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        sampler = ReadOnceTPESampler(seed=0, multivariate=True, group=True, constant_liar=True, n_startup_trials=2)
    study = optuna.create_study(storage=optuna.storages.RDBStorage(f"sqlite:///{tmp_path / 's.db'}"), sampler=sampler)
    for value in (1.0, 2.0, 3.0):
        study.enqueue_trial({"x": value})
        trial = study.ask()
        study.tell(trial, (trial.suggest_float("x", 0.0, 10.0) - 1.0) ** 2)
    seen: list[int] = []
    original = optuna.samplers.TPESampler._sample

    def spy(self: Any, study: Any, trial: Any, search_space: Any) -> Any:
        states = (optuna.trial.TrialState.RUNNING,)
        seen.append(len(study._get_trials(deepcopy=False, states=states)))
        return original(self, study, trial, search_space)

    monkeypatch.setattr(optuna.samplers.TPESampler, "_sample", spy)
    first = study.ask()
    if running_first:
        first.suggest_float("x", 0.0, 10.0)
    second = study.ask()
    second.suggest_float("x", 0.0, 10.0)
    assert seen[-1] == 2  # the first trial, still running, and the second itself
