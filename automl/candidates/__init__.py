"""Model families, which of them a job tries, and the full model pipeline for one trial.

Every candidate is a plain scikit-learn ``Pipeline([("prep", ...), ("model", ...)])`` that takes
raw rows. Families are listed in a fixed order, which is also the order of the recorded choices.
"""

from __future__ import annotations

from typing import Any

from sklearn.pipeline import Pipeline

from automl.candidates import (
    catboost,
    extra_trees,
    hist_gradient_boosting,
    knn,
    lightgbm,
    linear,
    mlp,
    random_forest,
    svm,
    xgboost,
)
from automl.candidates.base import CandidateChoice, Family, SelectionContext, param
from automl.errors import InputError
from automl.preprocessing import FeaturePlan, build_preprocessor, native_categorical_mask
from automl.profile import DatasetProfile

__all__ = [
    "FAMILIES",
    "CandidateChoice",
    "Family",
    "SelectionContext",
    "build_estimator",
    "family_names",
    "get_family",
    "param",
    "select_candidates",
]

FAMILIES: dict[str, Family] = {
    f.name: f
    for f in (
        linear.FAMILY,
        random_forest.FAMILY,
        extra_trees.FAMILY,
        hist_gradient_boosting.FAMILY,
        xgboost.FAMILY,
        lightgbm.FAMILY,
        catboost.FAMILY,
        knn.FAMILY,
        svm.FAMILY,
        mlp.FAMILY,  # imports TensorFlow only when one of its estimators fits, predicts or loads
    )
}


def family_names() -> list[str]:
    """Every family name, in the fixed order."""
    return list(FAMILIES)


def get_family(name: str) -> Family:
    """The family called ``name``; an unknown name raises :class:`InputError` listing valid ones."""
    try:
        return FAMILIES[name]
    except KeyError:
        valid = ", ".join(FAMILIES)
        raise InputError(
            f"The model family '{name}' is not known. Valid families: {valid}.",
            hint=f"use one of: {valid}",
        ) from None


def _check_names(names: list[str], field: str) -> None:
    unknown = [n for n in names if n not in FAMILIES]
    if unknown:
        valid = ", ".join(FAMILIES)
        raise InputError(
            f"{field} names unknown model famil{'y' if len(unknown) == 1 else 'ies'}: "
            f"{', '.join(repr(n) for n in unknown)}.",
            hint=f"use names from: {valid}",
            code="SPEC_INVALID",
        )


def select_candidates(ctx: SelectionContext, include: list[str] | None, exclude: list[str]) -> list[CandidateChoice]:
    """Decide which families a job tries: one choice per family, in :data:`FAMILIES` order.

    A non-empty ``include`` selects exactly those families, overriding the size rules; ``None``
    or an empty list means every family, subject to its rules. ``exclude`` always wins. A family
    that does not support the task is never selected. If nothing is left, raises
    :class:`InputError` with code ``SPEC_INVALID``.
    """
    _check_names(include or [], "candidates.include")
    _check_names(exclude, "candidates.exclude")
    choices: list[CandidateChoice] = []
    for name, family in FAMILIES.items():
        if ctx.task not in family.tasks:
            choices.append(CandidateChoice(name, False, f"{name} skipped: does not support {ctx.task} tasks"))
        elif name in exclude:
            choices.append(CandidateChoice(name, False, "skipped: excluded by the spec"))
        elif include:
            if name in include:
                choices.append(CandidateChoice(name, True, "selected: included by the spec"))
            else:
                choices.append(CandidateChoice(name, False, "skipped: not in candidates.include"))
        else:
            skip = family.skip_reason(ctx)
            if skip is None:
                choices.append(CandidateChoice(name, True, family.selected_reason(ctx)))
            else:
                choices.append(CandidateChoice(name, False, skip))
    if not any(c.selected for c in choices):
        reasons = "; ".join(f"{c.family}: {c.reason}" for c in choices)
        raise InputError(
            f"No model family is left to try for this {ctx.task} job ({ctx.rows:,} rows). {reasons}.",
            hint="remove names from candidates.exclude, or list families in candidates.include "
            f"(valid: {', '.join(FAMILIES)})",
            code="SPEC_INVALID",
        )
    return choices


def build_estimator(
    family: str,
    params: dict[str, Any],
    task: str,
    seed: int,
    n_jobs: int,
    plan: FeaturePlan,
    profile: DatasetProfile,
) -> Pipeline:
    """The unfitted ``Pipeline([("prep", preprocessor), ("model", estimator)])`` for one trial.

    ``params`` uses the bare names that ``Family.suggest`` returns; keys it leaves out take the
    family's defaults, so ``{"n_estimators": 20}`` is enough to shrink a forest.
    """
    fam = get_family(family)
    if task not in fam.tasks:
        raise InputError(
            f"The model family '{family}' does not support {task} tasks.",
            hint=f"it supports: {', '.join(sorted(fam.tasks))}",
        )
    merged = {**fam.defaults(task), **params}
    unknown = sorted(set(merged) - set(fam.defaults(task)))
    if unknown:
        raise InputError(
            f"The parameter(s) {', '.join(repr(k) for k in unknown)} are not known to '{family}' for {task} tasks.",
            hint=f"use the bare names {', '.join(fam.defaults(task))} (without the '{family}__' prefix)",
        )
    estimator = fam.build(merged, task, seed, n_jobs)
    if fam.style == "native":
        mask = native_categorical_mask(plan, profile)
        if mask is not None and any(mask):
            estimator.set_params(categorical_features=mask)
    return Pipeline([("prep", build_preprocessor(plan, profile, fam.style)), ("model", estimator)])
