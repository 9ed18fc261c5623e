"""Which family the search tries next, once the portfolio is used up: FLAML's learner selection.

Each family is drawn with probability inversely proportional to its *estimated cost for
improvement* (ECI): the seconds it took the family to find its last improvement, or the seconds it
has spent since without one, whichever is larger (Wang et al., "FLAML: A Fast and Lightweight
AutoML Library", MLSys 2021, section 4; ``SearchState.estimated_cost4improvement`` in FLAML).
A family that keeps improving at little cost is drawn often; one whose search has flattened out
(a one-parameter linear model after a dozen trials) is drawn less and less as its fruitless
seconds add up, and its share goes to the families still improving. The sampler (TPE) then draws
the parameters of the chosen family only.

As in FLAML when it ensembles, a family is held against its own best score, not the leader's: the
final ensemble is built from every family's trials, so a second family's better model pays even
while another leads.

The state is read from the study's trials (any worker's), so every worker sharing a study draws
from the same picture; each trial's seconds are a user attribute set when it is recorded. A job
without a time budget counts trials instead of seconds, as FLAML does without one.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

import optuna

from automl.portfolio import FAMILY_PARAM

SECONDS_ATTR = "seconds"  # a finished trial's wall seconds in its child, set when it is recorded
MIN_COST_S = 0.01  # a floor on a family's cost, so an instant family is not drawn every time


@dataclass
class FamilyState:
    """One family's search so far, in seconds of its own trials."""

    spent: float = 0.0  # seconds of all its finished trials
    best: float | None = None  # its best score (None before its first success)
    found_at: float = 0.0  # seconds spent when its best was found
    found_before: float = 0.0  # seconds spent when the best before that was found

    @property
    def cost_for_improvement(self) -> float:
        """The estimated seconds to its next improvement (FLAML's ECI)."""
        return max(self.found_at - self.found_before, self.spent - self.found_at, MIN_COST_S)


def family_states(
    trials: list[optuna.trial.FrozenTrial], maximize: bool, by_time: bool = True
) -> dict[str, FamilyState]:
    """Every family's state from the study's finished trials, in trial order. Without ``by_time``
    (a job with a trial cap and no time budget) each trial costs one, as in FLAML, so a seeded job
    draws the same families whatever its trials' timings."""
    states: dict[str, FamilyState] = {}
    for trial in sorted(trials, key=lambda t: t.number):
        if not trial.state.is_finished() or SECONDS_ATTR not in trial.user_attrs:
            continue  # running, waiting, or drawn and never run
        family = trial.params.get(FAMILY_PARAM)
        if family is None:
            continue
        state = states.setdefault(str(family), FamilyState())
        state.spent += float(trial.user_attrs[SECONDS_ATTR]) if by_time else 1.0
        value = trial.value if trial.state == optuna.trial.TrialState.COMPLETE else None
        if value is not None and (state.best is None or (value > state.best if maximize else value < state.best)):
            state.best = value
            state.found_before, state.found_at = state.found_at, state.spent
    return states


def choose_family(
    trials: list[optuna.trial.FrozenTrial],
    families: list[str],
    maximize: bool,
    rng: random.Random,
    by_time: bool = True,
) -> str | None:
    """The family to try next: one not yet tried first (in ``families`` order), else one drawn
    with probability 1/ECI. A family whose only trials are still running is not drawn again
    (its first cost is not known yet). None when no family can be drawn."""
    states = family_states(trials, maximize, by_time)
    started = {str(t.params.get(FAMILY_PARAM)) for t in trials if FAMILY_PARAM in t.params}
    untried = [f for f in families if f not in started]
    if untried:
        return untried[0]
    drawable = [f for f in families if f in states]
    if not drawable:
        return None
    weights = [1.0 / states[f].cost_for_improvement for f in drawable]
    return rng.choices(drawable, weights=weights)[0]
