"""MLP benchmark: the Keras network alone vs the best tree family at the same budget, and the share
of a mixed job's time spent in network trials.

For every data set in ../shared/datasets/manifest.json, three jobs on the embedded store with the
same seed, holdout (20 %) and budget: `mlp` alone; the tree families (random_forest, extra_trees,
hist_gradient_boosting, xgboost) with the ensemble off, so the final model is the best tree; and a
mixed job (linear, the trees and mlp, ensemble on). Prints a Markdown section for bench/RESULTS.md.

    python bench/mlp_bench.py [--budget 60] [--only wine,digits]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared" / "datasets"
TREES = ["random_forest", "extra_trees", "hist_gradient_boosting", "xgboost"]


def run(entry: dict[str, Any], budget: float, include: list[str], ensemble: bool) -> dict[str, Any]:
    from automl.artifacts import ArtifactStore
    from automl.pipeline import run_job, submit_job
    from automl.spec import parse_spec
    from automl.store import open_store

    task = "regression" if entry["task"] == "regression" else "classification"
    raw = {
        "spec_version": 1, "name": f"mlp-bench-{entry['name']}", "task": task, "seed": 0,
        "dataset": {"path": str(SHARED / entry["file"]), "target": entry["target"], "drop": entry.get("drop", [])},
        "budget": {"time_s": budget}, "holdout_fraction": 0.2, "cv": {"folds": 5},
        "candidates": {"include": include}, "ensemble": {"enabled": ensemble},
    }  # fmt: skip
    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite:///{tmp}/bench.db"
        store, arts = open_store(url), ArtifactStore(Path(tmp) / "art")
        job = submit_job(store, arts, parse_spec(raw, base_dir=Path(tmp)))
        start = time.monotonic()
        try:
            job = run_job(store, arts, job.id, url)
        except Exception as exc:  # a job that found no model: report it, go on
            return {"error": f"{type(exc).__name__}: {exc}"[:120]}
        wall = time.monotonic() - start
        trials = [r for r in store.list_runs(job.id) if r.kind == "trial" and r.finished_at]
        seconds = {r.id: (r.finished_at - r.started_at).total_seconds() for r in trials}  # type: ignore[operator]
        nets = [r for r in trials if r.family == "mlp"]
        summary = job.summary or {}
        return {
            "score": summary["holdout_score"], "metric": job.metric, "wall_s": wall,
            "best_family": summary["best"]["family"], "final": summary["final"],
            "trials": len(trials), "mlp_trials": len(nets),
            "mlp_pruned": sum(1 for r in nets if r.status == "pruned"),
            "mlp_share": sum(seconds[r.id] for r in nets) / wall if wall else 0.0,
        }  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--budget", type=float, default=60.0)
    parser.add_argument("--only", default="", help="Comma-separated data set names.")
    args = parser.parse_args()
    manifest = json.loads((SHARED / "manifest.json").read_text())
    rows = []
    for entry in manifest:
        if args.only and entry["name"] not in args.only.split(","):
            continue
        row = {
            "name": entry["name"],
            "mlp": run(entry, args.budget, ["mlp"], ensemble=False),
            "trees": run(entry, args.budget, TREES, ensemble=False),
            "mixed": run(entry, args.budget, ["linear", *TREES, "mlp"], ensemble=True),
        }
        print(json.dumps(row), flush=True)
        rows.append(row)
    print(f"\n## MLP (`bench/mlp_bench.py`, {args.budget:.0f} s per job)\n")
    print("| data set | metric | mlp alone | best tree | tree family | mlp trials (pruned) | mixed job: score "
          "| mixed: final | mixed: mlp trials | mixed: share of job time in mlp trials |")  # fmt: skip
    print("|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        m, t, x = r["mlp"], r["trees"], r["mixed"]

        def score(res: dict[str, Any]) -> str:
            return res["error"] if "error" in res else f"{res['score']:.4f}"

        metric = next((res["metric"] for res in (m, t, x) if "metric" in res), "—")
        print(
            f"| {r['name']} | {metric} | {score(m)} | {score(t)} | {t.get('best_family', '—')} | "
            f"{m.get('mlp_trials', 0)} ({m.get('mlp_pruned', 0)}) | {score(x)} | "
            f"{x.get('final', '—')} ({x.get('best_family', '—')}) | {x.get('mlp_trials', 0)} | "
            f"{100 * x.get('mlp_share', 0.0):.0f} % |"
        )


if __name__ == "__main__":
    main()
