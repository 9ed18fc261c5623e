"""Fleet benchmark: trials per minute with 1 and 2 worker processes, orchestration overhead per
trial, and the time from `automl submit` to the first trial started.

Needs PostgreSQL on 127.0.0.1:5432 and Redis on 127.0.0.1:6379 (each run uses a schema and a
Redis database of its own). Prints a Markdown section for bench/RESULTS.md.

    python bench/fleet_bench.py [--trials 40]
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
from pathlib import Path
from statistics import mean
from typing import Any

import psycopg
import redis

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared" / "datasets"
AUTOML = str(Path(sys.executable).with_name("automl"))
DSN = "host=127.0.0.1 port=5432 user=postgres dbname=test"


def run(workers: int, trials: int, family: str, tmp: Path) -> dict[str, Any]:
    schema = f"bench_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(DSN, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
    db = 15
    redis.Redis(host="127.0.0.1", port=6379, db=db).flushdb()
    env = {
        **os.environ,
        "AUTOML_DATABASE_URL": f"postgresql+psycopg://postgres@127.0.0.1:5432/test?options=-csearch_path%3D{schema}",
        "AUTOML_BROKER_URL": f"redis://127.0.0.1:6379/{db}",
        "AUTOML_ARTIFACT_ROOT": str(tmp / f"art-{workers}"),
    }
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
    procs = [
        subprocess.Popen([AUTOML, "worker", "-c", "1", "--loglevel", "WARNING"], env=env, start_new_session=True,
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        for _ in range(workers)
    ]  # fmt: skip
    try:
        time.sleep(6)  # workers connected and idle
        submitted = time.time()
        out = subprocess.run(
            [AUTOML, "submit", str(spec), "--parallel", str(workers), "--wait"], env=env, capture_output=True, text=True
        )
        job_id = int(re.search(r"queued job (\d+)", out.stdout).group(1))  # type: ignore[union-attr]
    finally:
        for p in procs:
            os.killpg(p.pid, signal.SIGTERM)
        for p in procs:
            p.wait(30)
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
    with psycopg.connect(DSN, autocommit=True) as conn:
        conn.execute(f'DROP SCHEMA "{schema}" CASCADE')
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
    args = parser.parse_args()
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
