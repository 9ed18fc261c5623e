"""The configurations a job tries before the sampler takes over: a portfolio known to do well.

The list is data (``automl/candidates/portfolio.json``, with its sources): first each selected
family's defaults, in an order that puts cheap, strong families first; then per task a short list
of published zero-shot configurations. The first part is enqueued when the study is created; the
rest one entry at a time, when nothing is waiting, until it is used up or ``patience`` entries in a
row have not improved the best score (then the sampler has the rest of the budget).

Entries carry the user attribute ``portfolio`` (their index), so any worker sharing the study can
tell how far the portfolio has gone.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import optuna

from automl.candidates import get_family

FAMILY_PARAM = "family"
INDEX_ATTR = "portfolio"
SOURCE_ATTR = "portfolio_source"
_FILE = Path(__file__).parent / "candidates" / "portfolio.json"


@dataclass(frozen=True)
class Entry:
    family: str
    params: dict[str, Any]
    source: str

    def trial_params(self) -> dict[str, Any]:
        """The entry as the study's parameters (family + prefixed names)."""
        return {FAMILY_PARAM: self.family, **{f"{self.family}__{k}": v for k, v in self.params.items()}}


@cache
def _document() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(_FILE.read_text())
    return loaded


def portfolio(task: str, families: list[str]) -> tuple[list[Entry], list[Entry]]:
    """(first, rest): the defaults of ``families`` in portfolio order, then the task's published
    configurations of those families."""
    doc = _document()
    order = [f for f in doc["first"] if f in families] + [f for f in families if f not in doc["first"]]
    first = [Entry(f, get_family(f).defaults(task), "defaults") for f in order]
    rest = [
        Entry(e["family"], dict(e["params"]), e["source"])
        for e in doc["tasks"].get(task, [])
        if e["family"] in families
    ]
    return first, rest


def _enqueue(study: optuna.Study, index: int, entry: Entry) -> None:
    study.enqueue_trial(entry.trial_params(), user_attrs={INDEX_ATTR: index, SOURCE_ATTR: entry.source})


WARM_ATTR = "warm_start"


def enqueue_first(study: optuna.Study, task: str, families: list[str], warm: list[Entry] | None = None) -> bool:
    """Queue the ``warm`` configurations (an earlier job's best: :mod:`automl.warmstart`), then
    each family's defaults, once: a resumed study already has them. Whether it queued them."""
    if study.trials:
        return False
    for entry in warm or []:
        study.enqueue_trial(entry.trial_params(), user_attrs={WARM_ATTR: entry.source})
    first, _ = portfolio(task, families)
    for i, entry in enumerate(first):
        _enqueue(study, i, entry)
    return True


def _stalled(trials: list[optuna.trial.FrozenTrial], first: int, maximize: bool, patience: int) -> bool:
    """Whether the last ``patience`` finished entries after the first part all failed to improve."""
    best: float | None = None
    stale = 0
    finished = {t.user_attrs[INDEX_ATTR]: t for t in trials if INDEX_ATTR in t.user_attrs and t.state.is_finished()}
    for index in sorted(finished):
        trial = finished[index]
        value = trial.value if trial.state == optuna.trial.TrialState.COMPLETE else None
        improved = value is not None and (best is None or (value > best if maximize else value < best))
        if improved:
            best = value
        if index >= first:
            stale = 0 if improved else stale + 1
    return stale >= patience


class Feeder:
    """Tops up the study's queue from the rest of the portfolio, one entry at a time."""

    def __init__(self, task: str, families: list[str]) -> None:
        self.first, self.rest = portfolio(task, families)
        self.patience = int(_document()["patience"])
        self.done = not self.rest

    def top_up(self, study: optuna.Study) -> None:
        """Enqueue the next entry when nothing is waiting, unless the portfolio is used up or stalled."""
        if self.done:
            return
        trials = study.get_trials(deepcopy=False)
        if any(t.state == optuna.trial.TrialState.WAITING for t in trials):
            return
        indices = [int(t.user_attrs[INDEX_ATTR]) for t in trials if INDEX_ATTR in t.user_attrs]
        upcoming = max(indices, default=-1) + 1
        if upcoming < len(self.first):
            return  # the first part is still being drawn by another worker
        maximize = study.direction == optuna.study.StudyDirection.MAXIMIZE
        offset = upcoming - len(self.first)
        if offset >= len(self.rest) or _stalled(trials, len(self.first), maximize, self.patience):
            self.done = True
            return
        _enqueue(study, upcoming, self.rest[offset])
