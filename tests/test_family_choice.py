"""The search's choice of family after the portfolio: FLAML's estimated cost for improvement."""

from __future__ import annotations

import random
from collections import Counter
from pathlib import Path
from types import SimpleNamespace

import optuna
import pytest

from automl.family_choice import SECONDS_ATTR, choose_family, family_states
from automl.portfolio import FAMILY_PARAM, Feeder

FAMILIES = ["linear", "lightgbm"]
_DIST = optuna.distributions.CategoricalDistribution(FAMILIES)


def _add(study: optuna.Study, family: str, value: float | None, seconds: float | None) -> None:
    """A finished trial of ``family`` (failed when ``value`` is None; never run when ``seconds`` is)."""
    state = optuna.trial.TrialState.COMPLETE if value is not None else optuna.trial.TrialState.FAIL
    attrs = {} if seconds is None else {SECONDS_ATTR: seconds}
    trial = optuna.trial.create_trial(
        state=state, value=value, params={FAMILY_PARAM: family}, distributions={FAMILY_PARAM: _DIST},
        user_attrs=attrs,
    )  # fmt: skip
    study.add_trial(trial)


def _study(direction: str = "minimize") -> optuna.Study:
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    return optuna.create_study(direction=direction, sampler=optuna.samplers.RandomSampler(seed=0))


def test_cost_for_improvement_is_the_longer_of_the_last_improvement_and_the_fruitless_time_since() -> None:
    study = _study()
    # linear: improves at 1 s and 3 s, then spends 1 s more in vain -> max(3 - 1, 4 - 3) = 2 s.
    for value in (5.0, 6.0, 4.0, 4.5):
        _add(study, "linear", value, 1.0)
    # lightgbm: its first trial (2 s) is its best; 10 s since without improvement -> 10 s.
    _add(study, "lightgbm", 3.0, 2.0)
    _add(study, "lightgbm", None, 4.0)  # a failed trial's seconds are spent all the same
    _add(study, "lightgbm", 3.5, 6.0)
    _add(study, "lightgbm", None, None)  # drawn and never run: costs nothing
    states = family_states(study.trials, maximize=False)
    assert states["linear"].best == 4.0 and states["linear"].cost_for_improvement == pytest.approx(2.0)
    assert states["lightgbm"].best == 3.0 and states["lightgbm"].cost_for_improvement == pytest.approx(10.0)
    # Counted in trials (no time budget): linear 3 - 1 = 2, lightgbm 3 - 1 = 2 (the unrun one is not counted).
    by_count = family_states(study.trials, maximize=False, by_time=False)
    assert by_count["linear"].cost_for_improvement == by_count["lightgbm"].cost_for_improvement == 2.0
    # Maximised, the same values improve at other trials: linear's best is 6 (found at 2 s, after 1 s).
    assert family_states(study.trials, maximize=True)["linear"].best == 6.0


def test_a_family_that_stopped_improving_is_drawn_less_in_proportion_to_its_fruitless_seconds() -> None:
    study = _study("maximize")
    _add(study, "linear", 0.80, 0.5)  # found at once, then 40 trials (20 s) without improving
    for _ in range(40):
        _add(study, "linear", 0.70, 0.5)
    for step in range(4):  # improving at each 1 s trial: cost 1 s
        _add(study, "lightgbm", 0.60 + step / 100, 1.0)
    drawn = Counter(choose_family(study.trials, FAMILIES, True, random.Random(seed)) for seed in range(2000))
    # 1/20 against 1/1: linear is drawn about 1 time in 21.
    assert 0.02 < drawn["linear"] / 2000 < 0.09
    assert drawn["lightgbm"] + drawn["linear"] == 2000


def test_an_untried_family_comes_first_and_one_still_running_is_not_drawn_again() -> None:
    study = _study()
    _add(study, "linear", 1.0, 0.1)
    assert choose_family(study.trials, FAMILIES, False, random.Random(0)) == "lightgbm"
    study.enqueue_trial({FAMILY_PARAM: "lightgbm"})
    running = study.ask({FAMILY_PARAM: _DIST})
    assert running.params[FAMILY_PARAM] == "lightgbm"
    # lightgbm's first trial runs: it is drawn no more until that trial ends.
    assert {choose_family(study.get_trials(), FAMILIES, False, random.Random(s)) for s in range(50)} == {"linear"}
    assert choose_family([], [], False, random.Random(0)) is None


def test_the_search_draws_the_family_that_improves_once_the_portfolio_is_used_up() -> None:
    from automl.tuning import _ask

    study = _study("maximize")
    feeder = Feeder("binary", FAMILIES)
    feeder.done = True  # the portfolio is used up
    _add(study, "linear", 0.80, 0.5)
    for _ in range(40):  # linear stalled long ago
        _add(study, "linear", 0.70, 0.5)
    for step in range(4):
        _add(study, "lightgbm", 0.60 + step / 100, 1.0)
    data = SimpleNamespace(task="binary", seed=0)
    drawn = []
    for _ in range(20):
        asked = _ask(study, data, FAMILIES, feeder)  # type: ignore[arg-type]
        drawn.append(asked.family)
        study.tell(asked.trial, state=optuna.trial.TrialState.FAIL)  # never run: changes no cost
    assert drawn.count("lightgbm") >= 16


@pytest.mark.slow
def test_every_trial_of_a_job_records_its_seconds_for_the_next_choice(tmp_path: Path) -> None:
    from automl.artifacts import ArtifactStore
    from automl.store import open_store
    from automl.tuning import load_job_study
    from tests.engine_helpers import run_spec, write_spec

    spec = write_spec(
        tmp_path, "penguins.csv", task="classification", dataset={"target": "species"},
        budget={"time_s": None, "trials": 14}, candidates={"include": ["linear", "knn"]}, cv={"folds": 3},
    )  # fmt: skip
    url = f"sqlite:///{tmp_path / 'store.db'}"
    job = run_spec(open_store(url), ArtifactStore(tmp_path / "art"), url, spec)
    assert job.status == "succeeded"
    study = load_job_study(url, job.id)
    assert study is not None
    ran = [t for t in study.trials if t.state.is_finished()]
    assert len(ran) == 14
    assert all(t.user_attrs[SECONDS_ATTR] > 0 for t in ran)
    # Past the portfolio, both families are still drawn.
    assert {t.params[FAMILY_PARAM] for t in ran[-6:]} == {"linear", "knn"}
