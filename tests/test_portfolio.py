"""The portfolio: known-good configurations before the sampler, cheapest families first, stopped
when it stops paying."""

from __future__ import annotations

import optuna
import pytest

from automl.candidates import FAMILIES, family_names, get_family
from automl.portfolio import INDEX_ATTR, Feeder, _document, enqueue_first, portfolio

TASKS = ("binary", "multiclass", "regression")


@pytest.mark.parametrize("task", TASKS)
def test_every_entry_lies_inside_its_family_search_space(task: str) -> None:
    families = [n for n, f in FAMILIES.items() if task in f.tasks]
    first, rest = portfolio(task, families)
    assert rest, "each task has published configurations after the defaults"
    for entry in [*first, *rest]:
        study = optuna.create_study(sampler=optuna.samplers.TPESampler(seed=0))
        study.enqueue_trial(entry.trial_params())
        trial = study.ask()
        assert trial.suggest_categorical("family", family_names()) == entry.family
        assert get_family(entry.family).suggest(trial, task) == pytest.approx(entry.params), entry.source
        assert set(entry.params) == set(get_family(entry.family).defaults(task))


def test_first_part_is_each_selected_family_once_in_portfolio_order() -> None:
    first, rest = portfolio("binary", ["linear", "random_forest", "lightgbm", "catboost"])
    assert [e.family for e in first] == ["linear", "lightgbm", "catboost", "random_forest"]
    assert all(e.source == "defaults" for e in first)
    assert {e.family for e in rest} <= {"linear", "random_forest", "lightgbm", "catboost"}
    assert all(e.source != "defaults" for e in rest)
    # Without a family, none of its entries.
    assert portfolio("binary", ["linear", "knn"])[1] == []
    # Every published entry names where it comes from.
    assert all(e.source.startswith(("FLAML", "AutoGluon")) for t in TASKS for e in portfolio(t, family_names())[1])
    assert "FLAML" in _document()["about"] and "AutoGluon" in _document()["about"]


def _run(study: optuna.Study, feeder: Feeder, value: object, trials: int) -> None:
    for _ in range(trials):
        feeder.top_up(study)
        trial = study.ask()
        study.tell(trial, value(trial) if callable(value) else value)  # type: ignore[arg-type]


def test_feeder_stops_the_portfolio_after_patience_entries_without_improvement() -> None:
    families = ["linear", "lightgbm"]
    study = optuna.create_study(direction="maximize", sampler=optuna.samplers.RandomSampler(seed=0))
    enqueue_first(study, "binary", families)
    enqueue_first(study, "binary", families)  # a resumed study: nothing enqueued twice
    feeder = Feeder("binary", families)
    assert len(feeder.first) == 2 and len(feeder.rest) > feeder.patience
    # The defaults score best; every portfolio entry after them is worse.
    _run(study, feeder, lambda t: 1.0 if t.user_attrs.get(INDEX_ATTR, 99) < 2 else 0.5, 20)
    from_portfolio = [t for t in study.trials if INDEX_ATTR in t.user_attrs]
    assert [t.user_attrs[INDEX_ATTR] for t in from_portfolio] == list(range(2 + feeder.patience))
    assert feeder.done
    assert len(study.trials) == 20  # the sampler drew the rest


def test_feeder_goes_on_while_entries_improve_and_ends_when_used_up() -> None:
    families = ["lightgbm"]
    study = optuna.create_study(direction="minimize", sampler=optuna.samplers.RandomSampler(seed=0))
    enqueue_first(study, "regression", families)
    feeder = Feeder("regression", families)
    _run(study, feeder, lambda t: 10.0 - t.number, 12)  # each trial better than the last
    indices = [t.user_attrs[INDEX_ATTR] for t in study.trials if INDEX_ATTR in t.user_attrs]
    assert indices == list(range(1 + len(feeder.rest)))
    assert feeder.done


def test_a_trial_drawn_for_a_family_keeps_that_family_and_samples_its_parameters() -> None:
    from types import SimpleNamespace

    from automl.tuning import _ask

    families = ["linear", "lightgbm", "catboost"]
    study = optuna.create_study(
        direction="maximize", sampler=optuna.samplers.TPESampler(seed=0, multivariate=True, group=True)
    )
    data = SimpleNamespace(task="binary")
    enqueue_first(study, "binary", families)
    feeder = Feeder("binary", families)
    # While the portfolio's defaults wait, they come first, whatever family is asked for.
    asked = _ask(study, data, families, feeder, "catboost")  # type: ignore[arg-type]
    assert (asked.family, asked.trial.user_attrs[INDEX_ATTR]) == ("linear", 0)
    study.tell(asked.trial, 0.5)
    for _ in range(2):
        study.tell(_ask(study, data, families, feeder).trial, 0.7)
    # With nothing waiting, the family asked for is drawn, its parameters from its own space.
    for seen in range(5):
        asked = _ask(study, data, families, feeder, "linear")  # type: ignore[arg-type]
        assert asked.family == "linear" and INDEX_ATTR not in asked.trial.user_attrs
        assert set(asked.params) == set(get_family("linear").defaults("binary"))
        study.tell(asked.trial, 0.6 + seen / 100)
    assert len({tuple(sorted(t.params.items())) for t in study.trials if t.params["family"] == "linear"}) > 2
