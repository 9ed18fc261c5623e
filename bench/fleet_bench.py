"""Fleet benchmark: trials per minute with 1 and 2 worker processes, orchestration overhead per
trial, and the time from `automl submit` to the first trial started.

Needs PostgreSQL on 127.0.0.1:5432 and Redis on 127.0.0.1:6379 (each run uses a schema and a
Redis database of its own). Prints a Markdown section for bench/RESULTS.md.

    python bench/fleet_bench.py [--trials 40]
    python bench/fleet_bench.py --search titanic,diamonds [--budget 60]

``--search`` runs the default search (every family, the portfolio, pruning, row rungs, ensemble,
refit on every row) of each named shared data set at the budget three ways: `automl run` in one
process, and `automl submit` through one and through two workers; same spec, same holdout rows.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from pathlib import Path
from statistics import mean
from typing import Any

import psycopg
import redis

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared" / "datasets"
AUTOML = str(Path(sys.executable).with_name("automl"))
DSN = "host=127.0.0.1 port=5432 user=postgres dbname=test"


def _environment(tmp: Path, tag: str) -> tuple[str, dict[str, str]]:
    """A fresh PostgreSQL schema and Redis database for one measurement, and the env naming them."""
    schema = f"bench_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(DSN, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
    db = 15
    redis.Redis(host="127.0.0.1", port=6379, db=db).flushdb()
    env = {
        **os.environ,
        "AUTOML_DATABASE_URL": f"postgresql+psycopg://postgres@127.0.0.1:5432/test?options=-csearch_path%3D{schema}",
        "AUTOML_BROKER_URL": f"redis://127.0.0.1:6379/{db}",
        "AUTOML_ARTIFACT_ROOT": str(tmp / f"art-{tag}"),
    }
    return schema, env


def _start_workers(env: dict[str, str], workers: int, threads: int | None = None) -> list[subprocess.Popen[bytes]]:
    share = ["--threads", str(threads)] if threads else []
    procs = [
        subprocess.Popen([AUTOML, "worker", "-c", "1", "--loglevel", "WARNING", *share], env=env,
                         start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        for _ in range(workers)
    ]  # fmt: skip
    time.sleep(6)  # workers connected and idle
    return procs


def _stop_workers(procs: list[subprocess.Popen[bytes]]) -> None:
    for p in procs:
        os.killpg(p.pid, signal.SIGTERM)
    for p in procs:
        p.wait(30)


def _drop(schema: str) -> None:
    with psycopg.connect(DSN, autocommit=True) as conn:
        conn.execute(f'DROP SCHEMA "{schema}" CASCADE')


def search(dataset: str, workers: int, budget: float, tmp: Path) -> dict[str, Any]:
    """The default search on ``dataset``: in one process (``workers`` 0) or through the fleet."""
    entry = next(e for e in json.loads((SHARED / "manifest.json").read_text()) if e["name"] == dataset)
    schema, env = _environment(tmp, f"{dataset}-{workers}")
    spec = tmp / f"search-{dataset}-{workers}.json"
    spec.write_text(
        json.dumps(
            {
                "spec_version": 1, "name": f"search-{dataset}", "seed": 0, "holdout_fraction": 0.2,
                "task": "regression" if entry["task"] == "regression" else "classification",
                "dataset": {"path": str(SHARED / entry["file"]), "target": entry["target"],
                            "drop": entry.get("drop", [])},
                "budget": {"time_s": budget}, "cv": {"folds": 5},
            }
        )
    )  # fmt: skip
    subprocess.run([AUTOML, "db", "upgrade"], env=env, check=True, capture_output=True)
    started = time.monotonic()
    if workers == 0:
        subprocess.run([AUTOML, "run", str(spec)], env=env, check=True, capture_output=True, text=True)
    else:
        # The machine's cores shared out: each worker's trials get cores / workers threads.
        procs = _start_workers(env, workers, max(1, (os.cpu_count() or 1) // workers))
        started = time.monotonic()
        try:
            subprocess.run(
                [AUTOML, "submit", str(spec), "--parallel", str(workers), "--wait"],
                env=env, check=True, capture_output=True, text=True,
            )  # fmt: skip
        finally:
            _stop_workers(procs)
    wall = time.monotonic() - started
    sys.path.insert(0, str(REPO))
    from automl.store import open_store

    store = open_store(env["AUTOML_DATABASE_URL"])
    job = store.list_jobs(limit=1)[0]
    summary = job.summary or {}
    runs = [r for r in store.list_runs(job.id) if r.kind == "trial"]
    store.close()
    _drop(schema)
    counts = summary.get("trials", {})
    return {
        "dataset": dataset, "workers": workers, "status": job.status, "metric": job.metric,
        "holdout": summary.get("holdout_score"), "wall_s": wall, "trials": len(runs),
        "succeeded": counts.get("succeeded"), "pruned": counts.get("pruned"),
        "processes": len({r.worker for r in runs}), "families": len({r.family for r in runs}),
        "validation": (summary.get("validation") or {}).get("scheme"), "final": summary.get("final"),
        "members": len((summary.get("model") or {}).get("members") or []),
        "not_scored": dict(Counter(f"{r.status}:{r.error_code}" for r in runs if r.error_code)),
        "timing": summary.get("timing"), "final_reason": summary.get("final_reason"),
        "tuning_ended_s": max(((r.finished_at or r.started_at) - job.started_at).total_seconds() for r in runs),
        "examples": [(r.family, r.error_code, (r.error_message or "")[:200]) for r in runs if r.error_code][:4],
    }  # fmt: skip


def search_table(rows: list[dict[str, Any]], budget: float) -> None:
    print(f"\n## The default search in process and on the fleet ({budget:g} s)\n")
    print("| data set | metric | where | holdout | wall s | trials (succeeded / pruned) | trial processes "
          "| families | validation | final (members) |")  # fmt: skip
    print("|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        where = "in process (`automl run`)" if r["workers"] == 0 else f"{r['workers']} worker(s) (`automl submit`)"
        print(
            f"| {r['dataset']} | {r['metric']} | {where} | {r['holdout']:.4f} | {r['wall_s']:.1f} | "
            f"{r['trials']} ({r['succeeded']} / {r['pruned']}) | {r['processes']} | {r['families']} | "
            f"{r['validation']} | {r['final']} ({r['members']}) |"
        )


def run(workers: int, trials: int, family: str, tmp: Path) -> dict[str, Any]:
    schema, env = _environment(tmp, str(workers))
    spec = tmp / f"spec-{workers}.json"
    spec.write_text(
        json.dumps(
            {
                "spec_version": 1, "name": "fleet-bench", "task": "classification", "seed": 0, "n_jobs": 1,
                "dataset": {"path": str(SHARED / "digits.csv"), "target": "target"},
                "budget": {"time_s": 900, "trials": trials}, "candidates": {"include": [family]},
                "ensemble": {"enabled": False},
            }
        )
    )  # fmt: skip
    subprocess.run([AUTOML, "db", "upgrade"], env=env, check=True, capture_output=True)
    procs = _start_workers(env, workers)
    try:
        submitted = time.time()
        out = subprocess.run(
            [AUTOML, "submit", str(spec), "--parallel", str(workers), "--wait"], env=env, capture_output=True, text=True
        )
        job_id = int(re.search(r"queued job (\d+)", out.stdout).group(1))  # type: ignore[union-attr]
    finally:
        _stop_workers(procs)
    sys.path.insert(0, str(REPO))
    from automl.store import open_store

    store = open_store(env["AUTOML_DATABASE_URL"])
    runs = [r for r in store.list_runs(job_id) if r.kind == "trial" and r.finished_at]
    starts = [r.started_at.timestamp() for r in runs]
    ends = [r.finished_at.timestamp() for r in runs]  # type: ignore[union-attr]
    span = max(ends) - min(starts)
    work = {m.run_id: m.value for r in runs for m in store.list_metrics(run_id=r.id) if m.name == "work_seconds"}
    by_worker: dict[str, list[Any]] = {}
    for r in runs:
        by_worker.setdefault(r.worker or "", []).append(r)
    # Each trial followed by another on the same worker: its period (start to the next start), its
    # model work (fits, fold predictions, scoring: timed in the child) and its fit time.
    periods, works, fits = [], [], []
    for rs in by_worker.values():
        rs.sort(key=lambda r: r.started_at)
        for a, b in itertools.pairwise(rs):
            if a.id in work:
                periods.append((b.started_at - a.started_at).total_seconds())
                works.append(work[a.id])
                fits.append(a.fit_seconds or 0.0)
    per_trial = mean(periods)
    store.close()
    _drop(schema)
    return {
        "workers": workers, "trials": len(runs), "trials_per_min": 60 * len(runs) / span,
        "mean_trial_s": per_trial, "mean_fit_s": mean(fits), "mean_work_s": mean(works),
        "overhead_fit_s": per_trial - mean(fits), "overhead_s": per_trial - mean(works),
        "overhead_pct": 100 * (per_trial - mean(works)) / per_trial,
        "steady_trials_per_min": workers * 60 / per_trial,
        "submit_to_first_trial_s": min(starts) - submitted, "processes": sorted(by_worker),
    }  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--trials", type=int, default=40)
    parser.add_argument("--family", default="linear", help="the one model family tuned (sets the trial length)")
    parser.add_argument("--search", default="", help="comma-separated shared data sets: the default search instead")
    parser.add_argument("--budget", type=float, default=60.0, help="time_s of each --search job")
    parser.add_argument("--ways", default="0,1,2", help="--search: workers per run (0: in one process)")
    args = parser.parse_args()
    if args.search:
        with tempfile.TemporaryDirectory() as tmp:
            ways = [int(w) for w in args.ways.split(",")]
            rows = [search(d, w, args.budget, Path(tmp)) for d in args.search.split(",") for w in ways]
        for r in rows:
            print(json.dumps(r))
        search_table(rows, args.budget)
        return
    with tempfile.TemporaryDirectory() as tmp:
        results = [run(n, args.trials, args.family, Path(tmp)) for n in (1, 2)]
    for r in results:
        print(json.dumps(r))
    one, two = results
    print("\n## Fleet\n")
    print(
        f"{args.trials} single-threaded trials ({args.family}, 5-fold CV on digits) through the real fleet: "
        "PostgreSQL store, Redis broker, `automl worker -c 1` processes.\n"
    )
    print(
        "| workers | trials/min (end to end) | trials/min (steady) | trial period s | fit s | model work s "
        "| overhead s (period − work) | overhead % | period − fit s | submit → first trial s |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|")
    for r in results:
        print(
            f"| {r['workers']} | {r['trials_per_min']:.1f} | {r['steady_trials_per_min']:.1f} | "
            f"{r['mean_trial_s']:.3f} | {r['mean_fit_s']:.3f} | {r['mean_work_s']:.3f} | {r['overhead_s']:.3f} | "
            f"{r['overhead_pct']:.1f} % | {r['overhead_fit_s']:.3f} | "
            f"{r['submit_to_first_trial_s']:.2f} |"
        )
    end_to_end = two["trials_per_min"] / one["trials_per_min"]
    steady = two["steady_trials_per_min"] / one["steady_trials_per_min"]
    print(f"\nSpeed-up with 2 workers: {end_to_end:.2f}× end to end, {steady:.2f}× in steady state")


if __name__ == "__main__":
    main()
