"""Benchmark: the automl engine vs a HistGradientBoosting baseline vs FLAML, at the same budget.

For every data set in ../shared/datasets/manifest.json: the same 80/20 holdout (seed 0, stratified
for classes), the task's default metric, a 60 s budget for the engine and for FLAML. Each system
runs in a subprocess of its own so its peak RSS (process and children) is measured apart.
Writes bench/RESULTS.md and bench/out/results.json.

    python bench/run_bench.py [--budget 60] [--only titanic,wine]
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared" / "datasets"
OUT = REPO / "bench" / "out"
SYSTEMS = ("automl", "baseline", "flaml")


def _peak_rss_mb() -> float:
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return max(own, children) / 1024.0


def _job_data(entry: dict[str, Any]) -> Any:
    """The engine's own split and encoding, so every system sees the same rows."""
    import pandas as pd

    from automl.metrics import DEFAULT_METRIC
    from automl.preprocessing import plan_features
    from automl.profile import profile_frame, resolve_task, with_target
    from automl.training import prepare_data

    frame = pd.read_csv(SHARED / entry["file"]).drop(columns=entry.get("drop", []))
    target = entry["target"]
    task = resolve_task(frame[target], "regression" if entry["task"] == "regression" else "classification")
    profile = with_target(profile_frame(frame), frame, target, task)
    plan = plan_features(profile, target, [], list(profile.leaks), None)
    return prepare_data(
        frame, target=target, task=task, metric=DEFAULT_METRIC[task], plan=plan, profile=profile,
        holdout_fraction=0.2, folds=5, seed=0, n_jobs=-1,
    )  # fmt: skip


def run_automl(entry: dict[str, Any], budget: float) -> dict[str, Any]:
    from automl.artifacts import ArtifactStore
    from automl.pipeline import run_job, submit_job
    from automl.spec import parse_spec
    from automl.store import open_store

    task = "regression" if entry["task"] == "regression" else "classification"
    raw = {
        "spec_version": 1, "name": f"bench-{entry['name']}", "task": task, "seed": 0,
        "dataset": {"path": str(SHARED / entry["file"]), "target": entry["target"], "drop": entry.get("drop", [])},
        "budget": {"time_s": budget}, "holdout_fraction": 0.2, "cv": {"folds": 5},
    }  # fmt: skip
    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite:///{tmp}/bench.db"
        store, arts = open_store(url), ArtifactStore(Path(tmp) / "art")
        job = submit_job(store, arts, parse_spec(raw, base_dir=Path(tmp)))
        start = time.monotonic()
        job = run_job(store, arts, job.id, url)
        wall = time.monotonic() - start
        summary = job.summary or {}
        trials = len([r for r in store.list_runs(job.id) if r.kind == "trial"])
        return {
            "score": summary["holdout_score"], "metric": job.metric, "wall_s": wall, "trials": trials,
            "final": summary["final"], "best_family": summary["best"]["family"],
        }  # fmt: skip


def run_baseline(entry: dict[str, Any], budget: float) -> dict[str, Any]:
    from automl.candidates import build_estimator
    from automl.model import predict_matrix

    data = _job_data(entry)
    start = time.monotonic()
    model = build_estimator("hist_gradient_boosting", {}, data.task, 0, -1, data.plan, data.profile)
    model.fit(data.X, data.y)
    prediction = predict_matrix(model, data.X_holdout, data.task, data.n_classes)
    wall = time.monotonic() - start
    score = data.metric.score(data.y_holdout, prediction)
    return {"score": score, "metric": data.metric_name, "wall_s": wall, "trials": 1}


def run_flaml(entry: dict[str, Any], budget: float) -> dict[str, Any]:
    import numpy as np
    from flaml import AutoML

    data = _job_data(entry)
    X, X_hold = data.X.copy(), data.X_holdout.copy()
    import pandas as pd

    for frame in (X, X_hold):  # FLAML wants categoricals as pandas categories, not pandas strings
        for col in frame.columns:
            dtype = frame[col].dtype
            if not pd.api.types.is_numeric_dtype(dtype) and not pd.api.types.is_bool_dtype(dtype):
                frame[col] = frame[col].astype("object").astype("category")
    task = "regression" if data.task == "regression" else "classification"
    automl = AutoML()
    start = time.monotonic()
    automl.fit(
        X, data.y, task=task, metric=data.metric_name, time_budget=budget, seed=0, verbose=0,
        eval_method="cv", n_splits=5,
    )  # fmt: skip
    if data.task == "regression":
        prediction = automl.predict(X_hold)
    else:
        proba = automl.predict_proba(X_hold)
        prediction = np.zeros((len(X_hold), data.n_classes))
        prediction[:, np.asarray(automl.classes_, dtype=int)] = proba
    wall = time.monotonic() - start
    trials = len(getattr(automl, "config_history", {}) or {})
    return {
        "score": data.metric.score(data.y_holdout, prediction), "metric": data.metric_name, "wall_s": wall,
        "trials": trials, "best_family": automl.best_estimator,
    }  # fmt: skip


def one(name: str, system: str, budget: float) -> None:
    entry = next(e for e in json.loads((SHARED / "manifest.json").read_text()) if e["name"] == name)
    result = {"automl": run_automl, "baseline": run_baseline, "flaml": run_flaml}[system](entry, budget)
    result["peak_rss_mb"] = _peak_rss_mb()
    print("RESULT " + json.dumps(result))


def _better(metric: str, a: float, b: float) -> int:
    from automl.metrics import get_metric

    tolerance = 1e-3 * max(abs(a), abs(b), 1e-12)
    if abs(a - b) <= tolerance:
        return 0
    return 1 if (a > b) == get_metric(metric).greater_is_better else -1


def write_results(results: list[dict[str, Any]], budget: float) -> None:
    lines = [
        "# Benchmark results",
        "",
        f"Engine (`automl run`, {budget:.0f} s budget, 5-fold CV, ensemble on) vs a baseline "
        "(HistGradientBoosting defaults with the engine's preprocessing) vs FLAML "
        f"(`time_budget={budget:.0f}`, 5-fold CV), on the same 80/20 holdout of seed 0, with each task's "
        "default metric (binary ROC AUC, multiclass log loss, regression RMSE). 2 cores, 24 GiB. "
        "Produced by `make bench` (`bench/run_bench.py`).",
        "",
        "| data set | metric | automl | baseline | FLAML | vs FLAML | automl wall s | overrun | trials "
        "(automl / FLAML) | final model | peak RSS MB (automl / FLAML) |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    tally = {1: 0, 0: 0, -1: 0}
    for r in results:
        a, b, f = r.get("automl"), r.get("baseline"), r.get("flaml")
        if not a or "error" in a:
            lines.append(f"| {r['name']} | — | error: {(a or {}).get('error', 'missing')[:80]} | | | | | | | | |")
            continue
        verdict = "—"
        if f and "error" not in f:
            outcome = _better(a["metric"], a["score"], f["score"])
            tally[outcome] += 1
            verdict = {1: "win", 0: "tie", -1: "loss"}[outcome]
        overrun = max(0.0, a["wall_s"] - budget) / budget
        fmt_score = lambda x: "error" if not x or "error" in x else f"{x['score']:.4f}"  # noqa: E731
        lines.append(
            f"| {r['name']} | {a['metric']} | {a['score']:.4f} | {fmt_score(b)} | {fmt_score(f)} | {verdict} | "
            f"{a['wall_s']:.1f} | {overrun:.1%} | {a['trials']} / {(f or {}).get('trials', '—')} | "
            f"{a.get('final')} ({a.get('best_family')}) | {a['peak_rss_mb']:.0f} / "
            f"{(f or {}).get('peak_rss_mb', 0):.0f} |"
        )
    lines += ["", f"**Summary vs FLAML: {tally[1]} wins, {tally[0]} ties, {tally[-1]} losses** "
              "(a tie is within 0.1 % of the score).", ""]  # fmt: skip
    # Replace the engine section only: the other sections (fleet, MLP, serving) come from other scripts.
    path = REPO / "bench" / "RESULTS.md"
    old = path.read_text() if path.exists() else ""
    rest = old[old.index("\n## ") :] if "\n## " in old else ""
    path.write_text("\n".join(lines) + rest)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--budget", type=float, default=60.0)
    parser.add_argument("--only", default="", help="Comma-separated data set names.")
    parser.add_argument("--systems", default=",".join(SYSTEMS))
    parser.add_argument("--one", nargs=2, metavar=("DATASET", "SYSTEM"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        one(args.one[0], args.one[1], args.budget)
        return
    manifest = json.loads((SHARED / "manifest.json").read_text())
    names = [e["name"] for e in manifest if not args.only or e["name"] in args.only.split(",")]
    OUT.mkdir(parents=True, exist_ok=True)
    results = []
    for name in names:
        row: dict[str, Any] = {"name": name}
        for system in args.systems.split(","):
            cmd = [sys.executable, __file__, "--budget", str(args.budget), "--one", name, system]
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=args.budget * 4 + 300)
            found = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")]
            row[system] = json.loads(found[-1][7:]) if found else {"error": (proc.stderr or "no result")[-300:]}
            print(name, system, row[system], flush=True)
        results.append(row)
        (OUT / "results.json").write_text(json.dumps(results, indent=2))
        write_results(results, args.budget)


if __name__ == "__main__":
    main()
