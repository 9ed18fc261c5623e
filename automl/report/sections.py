"""Sections of the job report: what each part of the page shows, read from the store, the job's
Optuna study and its final model (permutation importance and holdout diagnostics are computed here).
"""

from __future__ import annotations

import json
import math
import warnings
from collections import defaultdict
from datetime import datetime
from typing import Any

import numpy as np

from automl.artifacts import ArtifactStore
from automl.report.figures import (
    MAX_BARS,
    Plot,
    bars,
    confusion,
    curves,
    new_figure,
    png,
    regression_plots,
    short_text,
)
from automl.store.base import Store
from automl.store.records import JobRecord, ModelVersionRecord, RunRecord

MIN_IMPORTANCE_TRIALS = 5  # completed trials Optuna's importance evaluator needs to say anything useful
PERMUTATION_ROWS = 2000  # holdout rows permutation importance is computed on (a seeded sample above it)
PERMUTATION_REPEATS = 5  # fewer (down to 2) when that many would take past PERMUTATION_BUDGET_S
PERMUTATION_BUDGET_S = 30.0
MAX_CURVE_RUNS = 12  # MLP trials drawn in the learning curves (best first)


def fmt(value: Any, digits: int = 4) -> str:
    """How the report prints a number (tests format expected values with it too)."""
    if value is None:
        return "—"
    if isinstance(value, bool) or not isinstance(value, int | float | np.number):
        return str(value)
    if isinstance(value, int | np.integer):
        return str(int(value))
    v = float(value)
    if not math.isfinite(v):
        return str(v)
    if v == 0 or 1e-3 <= abs(v) < 1e6:
        return f"{v:.{digits}f}"
    return f"{v:.{digits}g}"


def _seconds(start: datetime | None, end: datetime | None) -> float | None:
    return None if start is None or end is None else (end - start).total_seconds()


def why_missing(job: JobRecord) -> str:
    """Why a job has no model (and so no holdout sections)."""
    if job.status in ("queued", "running"):
        return f"the job is still {job.status}, so there is no final model yet"
    if job.status == "succeeded":
        return "the job registered no model version"
    code = f" ({job.error_code}, see the error at the top)" if job.error_code else ""
    return f"the job {job.status}{code} before a model version was registered"


# -- spec, profile, selection ---------------------------------------------------------------------


def overview_section(store: Store, job: JobRecord, version: ModelVersionRecord | None) -> dict[str, Any]:
    dataset = store.get_dataset(job.dataset_id)
    summary = job.summary or {}
    timing = summary.get("timing") or {}
    return {
        "job": job,
        "direction": "higher is better" if job.greater_is_better else "lower is better",
        "dataset": dataset,
        "version": version,
        "duration": fmt(_seconds(job.started_at, job.finished_at), 1),
        "timing": timing,
        "spec_json": json.dumps(job.spec, indent=2, sort_keys=True, default=str),
        "environment": sorted((job.environment or {}).items()),
    }


def profile_section(store: Store, job: JobRecord) -> dict[str, Any]:
    profile = job.profile
    source = "job"
    if not profile:  # the job never started: the dataset's own profile, without the target analysis
        profile, source = store.get_dataset(job.dataset_id).profile, "dataset"
    columns = []
    for col in profile.get("columns", []):
        summary = col.get("summary") or {}
        if "mean" in summary:
            described = f"mean {fmt(summary['mean'], 3)}, std {fmt(summary.get('std'), 3)}, "
            described += f"range {fmt(summary.get('min'), 3)} – {fmt(summary.get('max'), 3)}"
        elif "top" in summary:
            described = ", ".join(f"{value} ({count})" for value, count in summary["top"][:3])
        else:
            described = ""
        columns.append(
            {**col, "missing": f"{100 * float(col.get('missing_fraction', 0.0)):.1f}%", "described": described}
        )
    return {
        "source": source,
        "rows": profile.get("rows"),
        "columns": columns,
        "warnings": list(profile.get("warnings", [])),
        "dropped": sorted((profile.get("dropped") or {}).items()),
        "target": profile.get("target"),
    }


# -- leaderboard, history, families, ensemble -----------------------------------------------------


def leaderboard_section(store: Store, job: JobRecord, runs: list[RunRecord]) -> list[dict[str, Any]]:
    by_id = {r.id: r for r in runs}
    rows = []
    for row in store.leaderboard(job.id):
        run = by_id.get(row.run_id)
        params = run.params if run is not None and row.kind == "trial" else {}
        shown = ", ".join(f"{k}={fmt(v, 3)}" for k, v in params.items())
        rows.append({**row.to_dict(), "params": shown, "error_message": run.error_message if run else None})
    return rows


def history_section(job: JobRecord, runs: list[RunRecord]) -> Plot | None:
    import matplotlib

    trials = sorted(
        (r for r in runs if r.kind == "trial" and r.finished_at), key=lambda r: r.finished_at or r.started_at
    )
    scored = [r for r in trials if r.status == "succeeded" and r.cv_score is not None]
    if not scored:
        return None
    start = min(r.started_at for r in trials)

    def xs(chosen: list[RunRecord]) -> list[float | None]:
        return [_seconds(start, r.finished_at) for r in chosen]

    fig, (ax,) = new_figure(7.5, 4.0)
    cmap = matplotlib.colormaps["tab10"]
    for i, family in enumerate(sorted({r.family for r in scored})):
        mine = [r for r in scored if r.family == family]
        ax.scatter(xs(mine), [r.cv_score for r in mine], color=cmap(i % 10), label=short_text(family), s=28, zorder=3)
    pruned = [r for r in trials if r.status == "pruned" and r.cv_score is not None]
    if pruned:
        ax.scatter(xs(pruned), [r.cv_score for r in pruned], marker="x", color="grey", label="pruned (partial)")
    best: list[float] = []
    for r in scored:
        score = float(r.cv_score or 0.0)
        better = not best or (score > best[-1] if job.greater_is_better else score < best[-1])
        best.append(score if better else best[-1])
    ax.step(xs(scored), best, where="post", color="black", lw=1.2, label="best so far", zorder=4)
    ax.set_xlabel("seconds since the first trial started")
    ax.set_ylabel(f"CV {short_text(job.metric)} ({'higher' if job.greater_is_better else 'lower'} is better)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="best")
    return png(fig, f"CV {job.metric} of {len(scored)} successful trials over time, with the best so far")


def families_section(job: JobRecord, runs: list[RunRecord]) -> dict[str, Any]:
    trials = [r for r in runs if r.kind == "trial"]
    selected = [c["family"] for c in (job.selection or []) if c.get("selected")]
    families = list(dict.fromkeys([*selected, *(r.family for r in trials)]))
    sign = -1.0 if job.greater_is_better else 1.0
    rows = []
    for family in families:
        mine = [r for r in trials if r.family == family]
        ok = sorted(
            (r for r in mine if r.status == "succeeded" and r.cv_score is not None),
            key=lambda r: (sign * float(r.cv_score or 0.0), r.id),
        )
        counts = {s: sum(1 for r in mine if r.status == s) for s in ("succeeded", "pruned", "failed", "timeout")}
        rows.append({"family": family, "trials": len(mine), "counts": counts, "best": ok[0] if ok else None})
    scored = sorted((r for r in rows if r["best"] is not None), key=lambda r: sign * float(r["best"].cv_score))
    plot = None
    if scored:
        plot = bars(
            [r["family"] for r in scored],
            [float(r["best"].cv_score) for r in scored],
            f"best CV {short_text(job.metric)}",
            f"best CV {job.metric} per model family",
        )
    return {"rows": rows, "plot": plot}


def ensemble_section(job: JobRecord, runs: list[RunRecord]) -> dict[str, Any]:
    summary = job.summary or {}
    by_id = {r.id: r for r in runs}
    ensemble = summary.get("ensemble")
    members = []
    if ensemble:
        for m in ensemble.get("members") or []:
            run = by_id.get(m.get("run_id"))
            members.append(
                {**m, "cv_score": run.cv_score if run else None, "holdout": run.holdout_score if run else None}
            )
    return {"final": summary.get("final"), "best": summary.get("best"), "ensemble": ensemble, "members": members}


# -- the Optuna study -----------------------------------------------------------------------------


def _importance_notes(messages: list[str]) -> list[str]:
    """Optuna warns once per thinly sampled parameter; say it once, naming them."""
    import re

    thin = [
        m.group(1) for m in map(re.compile(r"regimes for parameter `([^`]+)` have less than").search, messages) if m
    ]
    notes = [m for m in messages if "regimes for parameter" not in m]
    if thin:
        notes.append(
            f"{len(thin)} parameter(s) were sampled in fewer than 2 trials for some of their values, so their "
            f"importances may be inaccurate: {', '.join(sorted(thin))}"
        )
    return notes


def importances_section(job: JobRecord, runs: list[RunRecord], database_url: str) -> dict[str, Any]:
    # Opening a study creates it when missing: only open one the job's trials were drawn from.
    if job.study_name is None:
        return {"message": "the job never started tuning, so it has no Optuna study"}
    if not any(r.kind == "trial" for r in runs):
        return {"message": "the job ran no trials, so its Optuna study is empty"}
    import optuna

    from automl.metrics import get_metric
    from automl.tuning import open_study

    study = open_study(database_url, job.id, job.seed, get_metric(job.metric))
    complete = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
    if len(complete) < MIN_IMPORTANCE_TRIALS:
        return {
            "message": f"not enough completed trials for parameter importances: {len(complete)} completed, "
            f"at least {MIN_IMPORTANCE_TRIALS} needed"
        }
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            importances = optuna.importance.get_param_importances(study)
        except (ValueError, RuntimeError) as exc:
            return {"message": f"Optuna could not compute parameter importances: {exc}"}
    notes = _importance_notes(sorted({str(w.message) for w in caught if issubclass(w.category, UserWarning)}))
    rows = list(importances.items())
    plot = bars(
        [name for name, _ in rows[:MAX_BARS]],
        [value for _, value in rows[:MAX_BARS]],
        "importance (normalised to sum to 1)",
        "Optuna parameter importances",
    )
    return {"rows": rows, "plot": plot, "notes": notes, "trials": len(complete), "study": study.study_name}


# -- the final model on the holdout ---------------------------------------------------------------


def _predict(model: Any, X: Any, task: str) -> np.ndarray:
    """Regression: values. Classification: probabilities over codes ``0..K-1`` (the saved model is a
    DecodedClassifier whose ``predict_proba`` is already aligned to those codes)."""
    if task == "regression":
        return np.asarray(model.predict(X), dtype=float)
    return np.asarray(model.predict_proba(X), dtype=float)


def _diagnostics(job: JobRecord, data: Any, y: np.ndarray, pred: np.ndarray) -> dict[str, Any]:
    if job.task == "regression":
        residuals, versus = regression_plots(y, pred, data.profile.target.name if data.profile.target else "target")
        error = y - pred
        stats = {"rows": len(y), "mean residual": float(np.mean(error)), "max |residual|": float(np.max(np.abs(error)))}
        return {"kind": "regression", "residuals": residuals, "versus": versus, "stats": stats}
    classes = list(data.classes or [])
    matrix, confusion_plot = confusion(classes, y, pred)
    roc, pr, notes = curves(classes, y, pred)
    return {
        "kind": "classification",
        "classes": classes,
        "matrix": matrix,
        "confusion": confusion_plot,
        "roc": roc,
        "pr": pr,
        "notes": notes,
        "rows": len(y),
    }


def _permutation(job: JobRecord, data: Any, model: Any) -> dict[str, Any]:
    import time

    from sklearn.inspection import permutation_importance

    metric = data.metric
    # Only the modelled columns: the model ignores the others, so shuffling them costs time for a zero.
    X, y = data.X_holdout[[name for name, _ in data.plan.features]], data.y_holdout
    note = f"all {len(y)} holdout rows"
    if len(y) > PERMUTATION_ROWS:
        keep = np.sort(np.random.default_rng(job.seed).choice(len(y), PERMUTATION_ROWS, replace=False))
        X, y = X.iloc[keep].reset_index(drop=True), y[keep]
        note = f"a seeded sample of {PERMUTATION_ROWS} of the {len(data.y_holdout)} holdout rows"
    sign = 1.0 if metric.greater_is_better else -1.0

    def scorer(estimator: Any, X_: Any, y_: Any) -> float:
        return sign * float(metric.score(y_, _predict(estimator, X_, job.task)))

    # One prediction per column per repeat: a large ensemble on a wide table gets fewer repeats.
    started = time.perf_counter()
    _predict(model, X, job.task)
    per_column = (time.perf_counter() - started) * X.shape[1]
    repeats = int(np.clip(PERMUTATION_BUDGET_S // max(per_column, 1e-9), 2, PERMUTATION_REPEATS))
    try:
        result = permutation_importance(model, X, y, scoring=scorer, n_repeats=repeats, random_state=job.seed, n_jobs=1)
    except ValueError as exc:  # e.g. a metric undefined on these rows
        return {"message": f"permutation importance could not be computed: {exc}"}
    rows = sorted(
        (
            (str(name), float(m), float(s))
            for name, m, s in zip(X.columns, result.importances_mean, result.importances_std, strict=True)
        ),
        key=lambda row: -row[1],
    )
    top = rows[:MAX_BARS]
    change = "decrease" if metric.greater_is_better else "increase"
    plot = bars(
        [r[0] for r in top],
        [r[1] for r in top],
        f"{change} in {short_text(metric.name)} when shuffled",
        "permutation feature importance on the holdout",
        errors=[r[2] for r in top],
    )
    return {
        "rows": rows,
        "plot": plot,
        "note": note,
        "change": change,
        "repeats": repeats,
        "fewer": repeats < PERMUTATION_REPEATS,
    }


def final_model_section(
    store: Store, artifacts: ArtifactStore, job: JobRecord, version: ModelVersionRecord
) -> dict[str, Any]:
    from automl.context import load_context, load_evaluation_model

    ctx = load_context(store, artifacts, job.id)
    model = load_evaluation_model(store, artifacts, version.id)  # holdout rows are unseen by this fit
    data = ctx.data
    y = np.asarray(data.y_holdout)
    pred = _predict(model, data.X_holdout, job.task)
    recomputed = float(data.metric.score(y, pred))
    return {
        "diagnostics": _diagnostics(job, data, y, pred),
        "permutation": _permutation(job, data, model),
        "recomputed": recomputed,
    }


# -- MLP learning curves --------------------------------------------------------------------------


def learning_curves_section(store: Store, job: JobRecord, runs: list[RunRecord]) -> dict[str, Any]:
    mlp = [r for r in runs if r.kind == "trial" and r.family == "mlp"]
    if not mlp:
        return {"message": "this job has no MLP trials (model family 'mlp'), so there are no learning curves"}
    sign = -1.0 if job.greater_is_better else 1.0
    mlp.sort(key=lambda r: (r.cv_score is None, sign * float(r.cv_score or 0.0), r.id))
    series: dict[str, dict[int, list[tuple[int, float]]]] = defaultdict(dict)
    table = []
    for run in mlp:
        points: dict[tuple[str, int], list[float]] = defaultdict(list)
        for m in store.list_metrics(run_id=run.id):
            if m.step is not None:
                points[(f"{m.name} ({m.split})", m.step)].append(m.value)
        last: dict[str, float] = {}
        for (key, step), values in sorted(points.items()):
            series[key].setdefault(run.id, []).append((step, float(np.mean(values))))  # mean over folds
            last[key] = float(np.mean(values))
        epochs = len({step for _, step in points})
        table.append({"run": run, "epochs": epochs, "last": last})
    if not series:
        return {"message": f"the job's {len(mlp)} MLP trial(s) recorded no per-epoch metrics", "table": table}
    keys = sorted(series)[:4]
    fig, axes = new_figure(min(4.6 * len(keys), 11.0), 3.6, ncols=len(keys))
    drawn = [r for r in mlp if any(r.id in series[k] for k in keys)][:MAX_CURVE_RUNS]
    for ax, key in zip(axes, keys, strict=False):
        for run in drawn:
            curve = series[key].get(run.id)
            if curve:
                ax.plot([s for s, _ in curve], [v for _, v in curve], lw=1.2, label=f"trial {run.trial_number}")
        ax.set(title=short_text(key), xlabel="epoch")
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=7, loc="best")
    alt = f"per-epoch {', '.join(keys)} of {len(drawn)} MLP trial(s)"
    return {"plot": png(fig, alt), "keys": keys, "table": table, "drawn": len(drawn), "total": len(mlp)}
