"""Datasets: load CSV/Parquet with clear errors, fingerprint by content, register, split."""

from __future__ import annotations

import csv
import io
import weakref
from collections import OrderedDict
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np
import pandas as pd

from automl.artifacts import ArtifactStore, sha256_bytes
from automl.errors import DatasetInvalid, DatasetNotFound, DatasetUnreadable, Problem
from automl.profile import MIN_CLASS_ROWS, DatasetProfile, listed_classes, profile_frame, rare_classes
from automl.store.base import Store
from automl.store.records import DatasetRecord, NewDataset

FORMATS = {".csv": "csv", ".parquet": "parquet", ".pq": "parquet"}


@dataclass(frozen=True)
class LoadedTable:
    path: Path
    format: str
    fingerprint: str
    size_bytes: int
    frame: pd.DataFrame

    @cached_property
    def profile(self) -> DatasetProfile:
        """The table's profile, computed once for the spec's checks, the registration and the job
        this process then runs (:func:`profile_of`): 1.4 to 2.2 s each on 300,000 rows x 55 columns."""
        profile = profile_frame(self.frame)
        _PROFILES[self.fingerprint] = profile
        while len(_PROFILES) > _PROFILES_KEPT:
            _PROFILES.popitem(last=False)
        return profile


# Profiles of the tables this process read, by content fingerprint (the latest few).
_PROFILES: OrderedDict[str, DatasetProfile] = OrderedDict()
_PROFILES_KEPT = 4


# The tables this process parsed, by content fingerprint, held weakly: a job run by the process
# that submitted it (``automl run``) reads the frame its spec was checked against, while that is
# still alive, instead of parsing the stored copy of the same bytes again (1.1 s on 300,000 rows x
# 55 columns). Nothing is kept alive for it; a job elsewhere reads the stored copy.
_FRAMES: weakref.WeakValueDictionary[str, pd.DataFrame] = weakref.WeakValueDictionary()


def profile_of(frame: pd.DataFrame, fingerprint: str) -> DatasetProfile:
    """The profile of ``frame``, parsed from the content ``fingerprint``: the one this process
    already computed from the same content, else a new one (the same, as profiling is
    deterministic)."""
    known = _PROFILES.get(fingerprint)
    return known if known is not None and known.rows == len(frame) else profile_frame(frame)


def infer_format(path: str | Path) -> str | None:
    return FORMATS.get(Path(path).suffix.lower())


def read_bytes(path: Path) -> bytes:
    if not path.exists():
        raise DatasetNotFound(f"dataset file {path} does not exist", hint="check the path and its folder")
    if not path.is_file():
        raise DatasetUnreadable(f"dataset path {path} is not a file", hint="point at a .csv or .parquet file")
    try:
        return path.read_bytes()
    except OSError as exc:
        raise DatasetUnreadable(f"cannot read {path}: {exc.strerror}", hint="check its permissions") from exc


def _ragged_line(text: str, width: int) -> tuple[int, int] | None:
    for number, row in enumerate(csv.reader(io.StringIO(text)), start=1):
        if row and len(row) != width:
            return number, len(row)
    return None


def _check_names(names: list[str], source: str) -> None:
    for index, name in enumerate(names, start=1):
        if not str(name).strip():
            raise DatasetUnreadable(f"{source}: column {index} has no name", hint="give every column a header name")
    seen: set[str] = set()
    dups = sorted({n for n in names if n in seen or seen.add(n)})  # type: ignore[func-returns-value]
    if dups:
        raise DatasetUnreadable(
            f"{source}: duplicate column names {dups}", hint="rename the columns so each name is unique"
        )


def parse_csv(data: bytes, source: str) -> pd.DataFrame:
    import pyarrow as pa
    import pyarrow.csv as pacsv

    if not data.strip():
        raise DatasetUnreadable(f"{source} is empty", hint="write a header row and data rows to it")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise DatasetUnreadable(
            f"{source}: byte 0x{data[exc.start]:02x} at line {line} (offset {exc.start}) is not valid UTF-8",
            hint="re-save the file with UTF-8 encoding",
        ) from exc
    header = next(csv.reader(io.StringIO(text)), [])
    _check_names(header, source)
    try:
        table = pacsv.read_csv(
            io.BytesIO(text.encode("utf-8")), convert_options=pacsv.ConvertOptions(strings_can_be_null=True)
        )
    except pa.ArrowInvalid as exc:
        ragged = _ragged_line(text, len(header))
        if ragged:
            raise DatasetUnreadable(
                f"{source}: line {ragged[0]} has {ragged[1]} fields but the header has {len(header)}",
                hint="fix that row (a missing or extra comma, or an unquoted comma inside a value)",
            ) from exc
        raise DatasetUnreadable(f"{source} is not a valid CSV file: {exc}", hint="check the file") from exc
    frame: pd.DataFrame = table.to_pandas()
    if frame.empty:
        raise DatasetUnreadable(f"{source} has a header but no data rows", hint="add data rows")
    return frame


def parse_parquet(data: bytes, source: str) -> pd.DataFrame:
    import pyarrow as pa
    import pyarrow.parquet as pq

    if not data:
        raise DatasetUnreadable(f"{source} is empty", hint="write a Parquet table to it")
    try:
        table = pq.read_table(io.BytesIO(data))
    except (pa.ArrowException, OSError) as exc:
        raise DatasetUnreadable(
            f"{source} is not a valid Parquet file: {exc}", hint="check the file or its `format`"
        ) from exc
    _check_names(list(table.schema.names), source)
    frame: pd.DataFrame = table.to_pandas()
    if frame.empty:
        raise DatasetUnreadable(f"{source} has no data rows", hint="add data rows")
    return frame


def parse_table(data: bytes, fmt: str, source: str) -> pd.DataFrame:
    return parse_csv(data, source) if fmt == "csv" else parse_parquet(data, source)


def load_table(path: str | Path, fmt: str | None = None) -> LoadedTable:
    """Read and parse a dataset file; raises DatasetNotFound / DatasetUnreadable with the fix."""
    path = Path(path)
    fmt = fmt or infer_format(path)
    if fmt is None:
        raise DatasetUnreadable(
            f"cannot tell the format of {path.name} from its suffix",
            hint="use a .csv or .parquet file, or set `format` in the spec",
        )
    data = read_bytes(path)
    frame = parse_table(data, fmt, str(path))
    fingerprint = sha256_bytes(data)
    _FRAMES[fingerprint] = frame
    return LoadedTable(path, fmt, fingerprint, len(data), frame)


def stored_key(fingerprint: str, fmt: str) -> str:
    return f"datasets/{fingerprint}.{fmt}"


def register_table(
    store: Store, artifacts: ArtifactStore, table: LoadedTable, name: str | None = None
) -> tuple[DatasetRecord, bool]:
    """Copy the file into the artifact store by content and record it; same content → same record.
    A file whose bytes changed since ``table`` was read is refused before anything is stored: the
    copy must be the content that was checked and fingerprinted."""
    existing = store.find_dataset(table.fingerprint)
    if existing is not None:
        return existing, False
    key = stored_key(table.fingerprint, table.format)
    if not artifacts.exists(key):
        data = read_bytes(table.path)
        if sha256_bytes(data) != table.fingerprint:
            raise DatasetUnreadable(
                f"{table.path} changed after it was read and checked (its content has a new sha256)",
                hint="run again once nothing is writing to the file, or point the spec at a finished copy",
            )
        artifacts.put_bytes(key, data)
    profile = table.profile
    return store.add_dataset(
        NewDataset(
            name=name or table.path.stem,
            fingerprint=table.fingerprint,
            format=table.format,
            source_path=str(table.path.resolve()),
            stored_uri=key,
            size_bytes=table.size_bytes,
            n_rows=len(table.frame),
            n_columns=len(table.frame.columns),
            profile=profile.to_dict(),
        )
    )


def register_dataset(
    store: Store, artifacts: ArtifactStore, path: str | Path, name: str | None = None, fmt: str | None = None
) -> tuple[DatasetRecord, bool]:
    return register_table(store, artifacts, load_table(path, fmt), name)


def load_registered(dataset: DatasetRecord, artifacts: ArtifactStore) -> pd.DataFrame:
    """The stored copy of a registered dataset, checked against its fingerprint; or, where this
    process still holds the table it parsed from those very bytes, that table (a shallow copy)."""
    known = _FRAMES.get(dataset.fingerprint)
    if known is not None and len(known) == dataset.n_rows and len(known.columns) == dataset.n_columns:
        return known.copy(deep=False)
    data = artifacts.get_bytes(dataset.stored_uri, dataset.fingerprint)
    return parse_table(data, dataset.format, f"dataset {dataset.id} ({dataset.name})")


MIN_ROWS = 20  # rows with a target value: fewer cannot be held out and cross-validated


def target_problems(
    frame: pd.DataFrame,
    target: str,
    task: str,
    drop: list[str],
    id_column: str | None,
    profile: DatasetProfile | None = None,
) -> list[Problem]:
    """Problems of a spec's columns against the table: missing columns, an unusable target.
    ``profile``: the table's, where it is already known."""
    import difflib

    columns = [str(c) for c in frame.columns]
    problems = []

    def missing(path: str, name: str) -> Problem:
        close = difflib.get_close_matches(name, columns, n=1)
        hint = f"; did you mean '{close[0]}'?" if close else f"; columns are {columns[:20]}"
        return Problem("DATASET_INVALID", path, "column_missing", f"no column '{name}' in the dataset{hint}", name)

    known = set(columns)
    absent = [(index, name) for index, name in enumerate(drop) if name not in known]
    for index, name in absent[:20]:  # each with a suggestion; past twenty, a count
        problems.append(missing(f"dataset.drop[{index}]", name))
    if len(absent) > 20:
        problems.append(
            Problem(
                "DATASET_INVALID", "dataset.drop", "column_missing",
                f"{len(absent) - 20} more names in `drop` are not columns of the dataset",
            )
        )  # fmt: skip
    if id_column is not None and id_column not in columns:
        problems.append(missing("dataset.id_column", id_column))
    if target not in columns:
        problems.append(missing("dataset.target", target))
        return problems
    y = frame[target]
    present = y.dropna()
    if pd.api.types.is_numeric_dtype(present) and not pd.api.types.is_bool_dtype(present):
        infinite = np.flatnonzero(~np.isfinite(present.to_numpy(dtype=float)))
        if len(infinite):
            rows = ", ".join(str(int(present.index[i]) + 1) for i in infinite[:5])
            problems.append(
                Problem(
                    "DATASET_INVALID",
                    "dataset.target",
                    "target_not_finite",
                    f"target '{target}' has {len(infinite)} infinite value(s) (data row {rows}"
                    f"{', …' if len(infinite) > 5 else ''}; 1 is the first row after the header); "
                    "remove those rows or leave the values empty",
                    target,
                )
            )
            return problems
    if present.empty:
        problems.append(
            Problem(
                "DATASET_INVALID",
                "dataset.target",
                "target_empty",
                f"target '{target}' is all missing",
                target,
            )
        )
    elif task != "regression" and present.nunique() < 2:
        problems.append(
            Problem(
                "DATASET_INVALID",
                "dataset.target",
                "target_one_class",
                f"target '{target}' has a single class ({present.iloc[0]!r}); classification needs two or more",
                target,
            )
        )
    elif len(present) < MIN_ROWS:
        problems.append(
            Problem(
                "DATASET_INVALID",
                "dataset.target",
                "too_few_rows",
                f"target '{target}' has a value in {len(present)} row(s); a job needs at least {MIN_ROWS} "
                "(rows are held out for scoring and the rest split into folds)",
                target,
            )
        )
    elif task == "regression":
        if not pd.api.types.is_numeric_dtype(y) or pd.api.types.is_bool_dtype(y):
            problems.append(
                Problem(
                    "DATASET_INVALID",
                    "task",
                    "target_not_numeric",
                    f"regression needs a numeric target; '{target}' holds {y.dtype} values (use task: classification)",
                    task,
                )
            )
    elif pd.api.types.is_float_dtype(y) and not np.all(np.mod(present.to_numpy(dtype=float), 1) == 0):
        problems.append(
            Problem(
                "DATASET_INVALID",
                "task",
                "target_continuous",
                f"target '{target}' holds non-integer numbers; classification needs classes (use task: regression)",
                task,
            )
        )
    if not problems:
        problems += _feature_problems(frame, target, drop, id_column, profile)
    if problems or task == "regression":
        return problems
    # Classes with fewer than MIN_CLASS_ROWS rows are left out by the job (a warning on its
    # profile): a problem only when what is left cannot make a job.
    rare = rare_classes(present)
    kept = present[~present.isin(rare)]
    if rare and (kept.nunique() < 2 or len(kept) < MIN_ROWS):
        problems.append(
            Problem(
                "DATASET_INVALID",
                "dataset.target",
                "class_too_small",
                f"class(es) {listed_classes(rare)} of target '{target}' have fewer than {MIN_CLASS_ROWS} rows and "
                f"would be left out, which leaves {kept.nunique()} class(es) in {len(kept)} rows; a job needs two "
                f"classes and {MIN_ROWS} rows (each class needs rows to train on and rows to be scored on: merge "
                "rare classes or add rows)",
                target,
            )
        )
    return problems


# Preparing a column (profiling it for the spec check, the registration and the job, then encoding
# it) costs about 0.5 ms on 2 cores whatever the rows (measured: 0.26 ms a column for one profile
# and preparation of 10,000 and 40,000 columns x 60 rows). A job whose preparation alone would take
# half its budget could not train: it is refused before it exists.
PREPARE_S_PER_COLUMN = 0.0005


def width_problems(columns: int, time_s: float | None) -> list[Problem]:
    """A problem when preparing ``columns`` columns would take at least half of ``time_s``."""
    if time_s is None or columns * PREPARE_S_PER_COLUMN < 0.5 * time_s:
        return []
    need = 2 * columns * PREPARE_S_PER_COLUMN
    return [
        Problem(
            "DATASET_INVALID",
            "dataset",
            "too_wide_for_budget",
            f"{columns:,} columns take about {columns * PREPARE_S_PER_COLUMN:.0f} s to prepare, half or more of "
            f"the {time_s:g} s budget, which leaves no time to train; list the columns that are not features "
            f"in `drop`, or raise budget.time_s to at least {need:.0f}",
            columns,
        )
    ]


MODELLED_KINDS = ("numeric", "categorical", "boolean", "datetime")  # free text, ids and constants are not


def _feature_problems(
    frame: pd.DataFrame, target: str, drop: list[str], id_column: str | None, profile: DatasetProfile | None = None
) -> list[Problem]:
    """A problem when no column is left to learn from (every one is the target, dropped, an id,
    constant or free text): every trial would fail, so the job is refused before it exists."""
    excluded = {target, *drop, *([id_column] if id_column else [])}
    profile = profile or profile_frame(frame)
    others = [c for c in profile.columns if c.name not in excluded]
    if any(c.kind in MODELLED_KINDS for c in others):
        return []
    why = [f"'{c.name}' ({c.reason or c.kind})" for c in others[:5]]
    listed = f": {', '.join(why)}{', …' if len(others) > 5 else ''}" if why else ""
    return [
        Problem(
            "DATASET_INVALID",
            "dataset",
            "no_features",
            f"no column is left to learn from besides the target and the dropped ones{listed}; "
            "add columns that vary, or keep columns out of `drop`",
        )
    ]


def table_width_problems(frame: pd.DataFrame, drop: list[str], time_s: float | None) -> list[Problem]:
    """:func:`width_problems` for the columns of ``frame`` that ``drop`` leaves."""
    kept = len(frame.columns) - len(set(drop) & set(map(str, frame.columns)))
    return width_problems(kept, time_s)


def check_width(frame: pd.DataFrame, drop: list[str], time_s: float | None) -> None:
    problems = table_width_problems(frame, drop, time_s)
    if problems:
        raise DatasetInvalid(problems[0].message, hint="fix the spec's dataset section or its budget")


def check_target(
    frame: pd.DataFrame,
    target: str,
    task: str,
    drop: list[str],
    id_column: str | None,
    profile: DatasetProfile | None = None,
) -> None:
    problems = target_problems(frame, target, task, drop, id_column, profile)
    if problems:
        raise DatasetInvalid("; ".join(p.message for p in problems), hint="fix the spec's dataset section")
