"""Boosting rounds on small data: one inner split vs cross-validated early stopping vs the cap.

For each data set in ../shared/datasets/manifest.json (or ``--only``), draws ``--reps`` random
training sets of ``--rows`` rows (fewer where the set lacks 30 more; stratified for classes),
fits the default LightGBM, LightGBM with extremely randomised trees and XGBoost (``--catboost``
adds CatBoost; ``--families`` names the ones to fit) on each, and scores them on every other row
with the task's default metric (log loss on probabilities clipped at 1e-4). Each fit is made
three ways, by setting ``automl.candidates.boosting``'s thresholds:

- ``split``: early stopping on one inner 15 % split, then a refit of the kept rounds on every row;
- ``cv``: the round count cross-validated on 5 folds, then a refit on every row;
- ``cap``: the ``n_estimators`` cap as the round count (no early stopping).

Prints the mean score and fit seconds of each, for bench/RESULTS.md.

    python bench/rounds_bench.py [--rows 400] [--reps 6] [--only mpg,titanic] [--catboost]
    python bench/rounds_bench.py --families catboost    # of: lightgbm, lightgbm_xt, xgboost, catboost
"""

from __future__ import annotations

import argparse
import time
from typing import Any

import numpy as np
import run_bench

from automl.candidates import boosting, build_estimator
from automl.model import predict_matrix

MODES = {  # (ROUNDS_CV_MAX_ROWS, ROUNDS_CV_MIN_ROWS): which branch of Booster.fit each takes
    "split": (0, 0),
    "cv": (10**9, boosting.ROUNDS_CV_MIN_ROWS),
    "cap": (10**9, 10**9),
}


FAMILIES: dict[str, tuple[str, dict[str, Any]]] = {  # name -> (family, params)
    "lightgbm": ("lightgbm", {}),
    "lightgbm_xt": ("lightgbm", {"extra_trees": True}),
    "xgboost": ("xgboost", {}),
    "catboost": ("catboost", {}),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=400)
    parser.add_argument("--reps", type=int, default=6)
    parser.add_argument("--only", default="")
    parser.add_argument("--catboost", action="store_true")
    parser.add_argument("--families", default="", help="Comma-separated, of: " + ", ".join(FAMILIES))
    args = parser.parse_args()
    import pandas as pd
    from sklearn.model_selection import train_test_split

    names = args.families.split(",") if args.families else ["lightgbm", "lightgbm_xt", "xgboost"]
    if args.catboost and "catboost" not in names:
        names.append("catboost")
    unknown = sorted(set(names) - set(FAMILIES))
    if unknown:
        parser.error(f"unknown families {unknown}: choose from {', '.join(FAMILIES)}")
    families = [FAMILIES[name] for name in names]
    wanted = set(filter(None, args.only.split(",")))
    print(f"| data set | metric | model | {' | '.join(MODES)} | fit s ({' / '.join(MODES)}) |")
    print(f"|---|---|---|{'---|' * len(MODES)}---|")
    for entry in run_bench._entries():
        if entry.get("large") or (wanted and entry["name"] not in wanted):
            continue
        data = run_bench._job_data(entry)
        X = pd.concat([data.X, data.X_holdout])
        y = np.concatenate([data.y, data.y_holdout])
        rows = min(args.rows, len(y) - 30)  # at least 30 rows to score on
        scores: dict[tuple[str, str], list[tuple[float, float]]] = {}
        for rep in range(args.reps):
            train, test = train_test_split(
                np.arange(len(y)), train_size=rows, random_state=rep,
                stratify=None if data.task == "regression" else y,
            )  # fmt: skip
            for family, params in families:
                label = family + (" XT" if params else "")
                for mode, (cv_max, cv_min) in MODES.items():
                    boosting.ROUNDS_CV_MAX_ROWS, boosting.ROUNDS_CV_MIN_ROWS = cv_max, cv_min
                    model = build_estimator(family, params, data.task, 0, 1, data.plan, data.profile)
                    started = time.monotonic()
                    model.fit(X.iloc[train], y[train])
                    seconds = time.monotonic() - started
                    pred = predict_matrix(model, X.iloc[test], data.task, data.n_classes)
                    if data.task != "regression":
                        pred = np.clip(pred, 1e-4, 1.0)
                        pred = pred / pred.sum(axis=1, keepdims=True)
                    scores.setdefault((label, mode), []).append((data.metric.score(y[test], pred), seconds))
        for label in dict.fromkeys(k[0] for k in scores):
            means = {mode: np.mean(scores[(label, mode)], axis=0) for mode in MODES}
            cells = " | ".join(f"{means[m][0]:.4f}" for m in MODES)
            fits = " / ".join(f"{means[m][1]:.2f}" for m in MODES)
            print(f"| {entry['name']} ({rows} rows) | {data.metric_name} | {label} | {cells} | {fits} |", flush=True)


if __name__ == "__main__":
    main()
