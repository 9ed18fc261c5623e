"""Four generated data sets of shapes the shared ones lack, for `bench/run_bench.py --datasets DIR`:
a check of time and memory where a 60 s budget is tight, and of the fallbacks that then decide
the final model.

    python bench/stress_datasets.py /tmp/stress
    python bench/run_bench.py --datasets /tmp/stress --systems automl,baseline

- cover_like: 300,000 rows x 54 features, seven imbalanced classes; ten numeric columns and 44
  one-hot indicator columns, the shape of the UCI covertype table (log loss).
- wide: 8,000 rows x 400 numeric columns, 20 of them informative, 5 % of labels flipped;
  string classes (ROC AUC).
- highcard: 100,000 rows; three categorical columns of 5,000, 800 and 40 values, whose effects
  add to a non-linear numeric part; missing values in two columns (RMSE).
- imbalanced: 60,000 rows x 26 columns, 1.5 % positives, one categorical column (ROC AUC).

Seeded: the same files on every machine. Nothing here is real data, so scores say how the engine
copes with the shape, not how it ranks on real tables.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd


def cover_like(rng: np.random.Generator) -> pd.DataFrame:
    from sklearn.datasets import make_classification

    n = 300_000
    weights = [0.36, 0.49, 0.06, 0.005, 0.016, 0.03, 0.039]
    X, y = make_classification(
        n, 10, n_informative=8, n_redundant=2, n_classes=7, n_clusters_per_class=2, weights=weights, random_state=0
    )
    frame = pd.DataFrame(X * 100 + 1000, columns=[f"num{i}" for i in range(10)]).round(0)
    area = (np.abs(X[:, 0] * 3).astype(int) + y) % 4
    soil = (np.abs(X[:, 1] * 7).astype(int) + 3 * y + rng.integers(0, 3, n)) % 40
    for i in range(4):
        frame[f"wild{i}"] = (area == i).astype(int)
    for i in range(40):
        frame[f"soil{i}"] = (soil == i).astype(int)
    frame["cover"] = y + 1
    return frame


def wide(rng: np.random.Generator) -> pd.DataFrame:
    from sklearn.datasets import make_classification

    X, y = make_classification(8000, 400, n_informative=20, n_redundant=30, flip_y=0.05, random_state=1)
    frame = pd.DataFrame(X, columns=[f"x{i}" for i in range(400)]).round(4)
    frame["label"] = np.where(y == 1, "yes", "no")
    return frame


def highcard(rng: np.random.Generator) -> pd.DataFrame:
    n = 100_000
    zips, products, shops = rng.integers(0, 5000, n), rng.integers(0, 800, n), rng.integers(0, 40, n)
    zip_effect, product_effect, shop_effect = rng.normal(0, 1, 5000), rng.normal(0, 2, 800), rng.normal(0, 1, 40)
    a, b, c = rng.normal(size=n), rng.uniform(0, 10, n), rng.normal(size=n)
    sales = zip_effect[zips] + product_effect[products] + shop_effect[shops] + 2 * np.sin(b) + a * c
    frame = pd.DataFrame(
        {
            "zip": [f"Z{z:05d}" for z in zips],
            "product": [f"p-{p}" for p in products],
            "shop": [f"shop {s}" for s in shops],
            "a": a.round(3),
            "b": b.round(3),
            "c": c.round(3),
        }
    )
    frame.loc[rng.random(n) < 0.1, "a"] = np.nan
    frame.loc[rng.random(n) < 0.05, "product"] = np.nan
    frame["sales"] = (sales + rng.normal(0, 1, n)).round(3)
    return frame


def imbalanced(rng: np.random.Generator) -> pd.DataFrame:
    from sklearn.datasets import make_classification

    X, y = make_classification(
        60_000, 25, n_informative=10, weights=[0.985], flip_y=0.002, class_sep=0.8, random_state=2
    )
    frame = pd.DataFrame(X, columns=[f"f{i}" for i in range(25)]).round(4)
    frame["cat"] = np.array(list("ABCDEFGH"))[rng.integers(0, 8, len(y))]
    frame["fraud"] = y
    return frame


# name, maker, target, task
SETS = [
    ("cover_like", cover_like, "cover", "multiclass"),
    ("wide", wide, "label", "binary"),
    ("highcard", highcard, "sales", "regression"),
    ("imbalanced", imbalanced, "fraud", "binary"),
]


def main(out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    manifest = []
    for name, make, target, task in SETS:
        frame = make(rng)
        frame.to_csv(out / f"{name}.csv", index=False)
        manifest.append({"name": name, "file": f"{name}.csv", "target": target, "task": task, "drop": []})
        print(f"{name}: {len(frame):,} rows x {frame.shape[1]} columns")
    (out / "manifest.json").write_text(json.dumps(manifest, indent=1) + "\n")


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    main(Path(sys.argv[1]))
