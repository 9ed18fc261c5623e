"""Job specs: pydantic models, validated once at the edge, every problem reported at once.

A spec is a JSON file (``jobspecs/*.json``). :func:`validate_file` parses it, checks every field,
the cross-field rules, and (when the dataset file is reachable) the columns against the data,
and raises :class:`~automl.errors.SpecInvalid` listing each problem with its JSON path, the rule
that failed and the offending value.
"""

from __future__ import annotations

import dataclasses
import difflib
import hashlib
import json
import os
import re
import stat
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from pydantic_core import PydanticCustomError

from automl.errors import Problem, SpecInvalid, clip

# Kept here (not imported from automl.candidates) so validating a spec loads no ML library;
# tests/test_spec.py checks it matches the candidates registry.
FAMILY_NAMES = (
    "linear",
    "random_forest",
    "extra_trees",
    "hist_gradient_boosting",
    "xgboost",
    "lightgbm",
    "catboost",
    "knn",
    "svm",
    "mlp",
)
Family = Literal[
    "linear",
    "random_forest",
    "extra_trees",
    "hist_gradient_boosting",
    "xgboost",
    "lightgbm",
    "catboost",
    "knn",
    "svm",
    "mlp",
]
METRIC_NAMES: dict[str, tuple[str, ...]] = {
    "binary": ("roc_auc", "log_loss", "accuracy", "balanced_accuracy", "f1", "f1_macro"),
    "multiclass": ("log_loss", "roc_auc", "accuracy", "balanced_accuracy", "f1_macro"),
    "regression": ("rmse", "mae", "r2", "mape"),
}
NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$"
SPEC_VERSION = 1


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class DatasetSpec(_Strict):
    """Where the data is and which column to learn."""

    path: str | None = Field(
        None, min_length=1, description="File path, relative to the spec file's folder (or absolute)."
    )
    id: int | None = Field(None, strict=True, ge=1, description="A registered dataset id, instead of `path`.")
    format: Literal["csv", "parquet"] | None = Field(None, description="Inferred from the suffix if unset.")
    target: str = Field(min_length=1, description="The column to predict.")
    drop: list[str] = Field(default_factory=list, max_length=10_000, description="Columns never used as features.")
    id_column: str | None = Field(None, description="A row identifier: kept out of the features.")


MAX_TIME_S = 7 * 24 * 3600  # a week: the longest budget a job may have


class BudgetSpec(_Strict):
    """How much to spend. The job stops at whichever limit comes first."""

    time_s: float | None = Field(300.0, strict=True, gt=0, le=MAX_TIME_S, description="Wall-clock seconds for the job.")
    trials: int | None = Field(None, strict=True, ge=1, le=100_000, description="Maximum number of trials.")
    trial_time_s: float | None = Field(None, strict=True, gt=0, description="Wall-clock cap on one trial.")


class CandidatesSpec(_Strict):
    """Which model families to try; `include` overrides the automatic rules."""

    include: list[Family] | None = Field(None, min_length=1)
    exclude: list[Family] = Field(default_factory=list)


class CvSpec(_Strict):
    folds: int = Field(
        5, strict=True, ge=2, le=20, description="K of K-fold cross-validation (stratified for classes)."
    )
    scheme: Literal["auto", "cv", "holdout"] = Field(
        "auto",
        description="How trials are validated: K-fold `cv`, one `holdout` split (a tenth of the training "
        "rows, at most 10,000), or `auto`: K-fold while rows x columns is small for the time budget, else a "
        "holdout split.",
    )


class EnsembleSpec(_Strict):
    enabled: bool = Field(True, strict=True)
    max_size: int = Field(5, strict=True, ge=2, le=50, description="Most distinct members in the voting ensemble.")


class RegisterSpec(_Strict):
    model_name: str | None = Field(None, pattern=NAME_PATTERN, description="Defaults to the spec's name.")
    promote: Literal["never", "always", "if_better"] = Field(
        "never", description="Move the `production` alias to the new version: never, always, or if better."
    )


class MonitorSpec(_Strict):
    """How `automl monitor` judges the model's new inputs (defaults: the tests and thresholds of the
    usual drift tools, chosen by kind and sample size)."""

    numeric_test: Literal["auto", "ks", "wasserstein", "psi"] = Field(
        "auto",
        description="Drift test of numeric features: `auto` is Kolmogorov-Smirnov (p < 0.05) up to 1,000 rows, "
        "else the Wasserstein distance in reference standard deviations (>= 0.1); `psi` drifts at >= 0.2.",
    )
    categorical_test: Literal["auto", "chisquare", "jensenshannon", "psi"] = Field(
        "auto",
        description="Drift test of categorical features: `auto` is chi-square (p < 0.05) up to 1,000 rows, "
        "else the Jensen-Shannon distance (>= 0.1).",
    )
    threshold: float | None = Field(
        None, strict=True, gt=0, description="Overrides the chosen tests' default threshold."
    )
    drift_share: float = Field(
        0.5, strict=True, gt=0, le=1, description="The data set has drifted when this share of its features has."
    )
    on_drift: Literal["report", "retrain"] = Field(
        "report", description="What `automl monitor` does on drift: report it, or also retrain on the new rows."
    )


class JobSpec(_Strict):
    """A declarative AutoML job."""

    model_config = ConfigDict(extra="forbid", frozen=True, validate_by_name=True, serialize_by_alias=True)

    spec_version: Literal[1] = Field(description="Version of this spec format; must be 1.")
    name: str = Field(pattern=NAME_PATTERN, description="Job name; letters, digits, '.', '_' and '-'.")
    dataset: DatasetSpec
    task: Literal["classification", "binary", "multiclass", "regression"]
    metric: str | None = Field(None, description="Metric to optimise; the task's default if unset.")
    budget: BudgetSpec = Field(default_factory=BudgetSpec)
    candidates: Literal["auto"] | CandidatesSpec = "auto"
    cv: CvSpec = Field(default_factory=CvSpec)
    holdout_fraction: float = Field(0.2, strict=True, gt=0.0, le=0.5)
    ensemble: EnsembleSpec = Field(default_factory=EnsembleSpec)
    # `register` would shadow ABCMeta.register on the model class, hence the alias.
    register_: RegisterSpec = Field(default_factory=RegisterSpec, alias="register")
    seed: int = Field(0, strict=True, ge=0, le=2**31 - 1)
    n_jobs: int = Field(-1, strict=True, ge=-1, le=256, description="Threads per model fit; -1 uses every core.")
    monitor: MonitorSpec = Field(default_factory=MonitorSpec)

    @field_validator("spec_version", mode="before")
    @classmethod
    def _spec_version_is_a_number(cls, value: Any) -> Any:
        if isinstance(value, bool):  # true == 1 in Python; a spec says 1
            raise PydanticCustomError("int_type", "the spec version is the number 1, not a boolean")
        return value

    @field_validator("n_jobs")
    @classmethod
    def _n_jobs_not_zero(cls, value: int) -> int:
        if value == 0:
            raise PydanticCustomError("n_jobs_zero", "0 threads cannot fit a model; use -1 (every core) or 1 or more")
        return value

    @property
    def model_name(self) -> str:
        return self.register_.model_name or self.name

    def include(self) -> list[str] | None:
        if isinstance(self.candidates, CandidatesSpec) and self.candidates.include is not None:
            return list(self.candidates.include)
        return None

    def exclude(self) -> list[str]:
        return list(self.candidates.exclude) if isinstance(self.candidates, CandidatesSpec) else []


@dataclass(frozen=True)
class LoadedSpec:
    spec: JobSpec
    source: str
    base_dir: Path
    # The data file as it was read to check the spec against it (a ``LoadedTable``), so submitting
    # the spec does not read and parse it again; None when the data was not checked.
    table: Any = field(default=None, compare=False, repr=False)

    def dataset_path(self) -> Path | None:
        if self.spec.dataset.path is None:
            return None
        path = Path(self.spec.dataset.path)
        return path if path.is_absolute() else (self.base_dir / path)

    @property
    def hash(self) -> str:
        return spec_hash(self.spec)

    def with_overrides(self, *, time_s: float | None = None, trials: int | None = None) -> LoadedSpec:
        """The spec with command-line budget overrides applied and validated by the same rules as the
        file (``--time -5`` or ``--trials 0`` is refused by field path, before anything is stored)."""
        overrides = {k: v for k, v in {"time_s": time_s, "trials": trials}.items() if v is not None}
        if not overrides:
            return self
        raw = self.spec.model_dump(mode="json", by_alias=True)
        raw["budget"] = {**raw["budget"], **overrides}
        try:
            spec = JobSpec.model_validate(raw)
        except ValidationError as exc:
            options = {"budget.time_s": "--time", "budget.trials": "--trials"}
            problems = [
                Problem(p.code, p.path, p.rule, f"{p.message} (from {options[p.path]})", p.value)
                if p.path in options
                else p
                for p in _problems_from_pydantic(exc, raw)
            ]
            raise SpecInvalid(problems, source=self.source) from None
        return LoadedSpec(spec, self.source, self.base_dir, self.table)


def spec_hash(spec: JobSpec) -> str:
    canonical = json.dumps(spec.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


def json_schema() -> dict[str, Any]:
    schema = JobSpec.model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["$id"] = "https://automl.dev/schemas/jobspec-v1.json"
    schema["properties"] = {
        "$schema": {"type": "string", "description": "Path or URL of this JSON Schema (for editors)."},
        **schema["properties"],
    }
    return schema


# -- error reporting ------------------------------------------------------------------------------


def _json_path(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "$"


def _fields_at(loc: tuple[int | str, ...]) -> list[str]:
    """Field names of the model found at ``loc`` in the spec (for "did you mean")."""
    model: Any = JobSpec
    for part in loc:
        if isinstance(part, int):
            continue
        fields = {(f.alias or n): f for n, f in model.model_fields.items()} if hasattr(model, "model_fields") else {}
        field = fields.get(part)
        if field is None:
            return []
        candidates = [a for a in getattr(field.annotation, "__args__", ()) if hasattr(a, "model_fields")]
        model = field.annotation if hasattr(field.annotation, "model_fields") else (candidates or [None])[0]
        if model is None:
            return []
    if not hasattr(model, "model_fields"):
        return []
    return [f.alias or n for n, f in model.model_fields.items()]


def _suggest(word: str, options: list[str]) -> str:
    close = difflib.get_close_matches(word, options, n=1, cutoff=0.6)
    return f"; did you mean '{close[0]}'?" if close else ""


def _union_tag(part: int | str) -> bool:
    return isinstance(part, str) and (part.startswith("literal[") or part == "CandidatesSpec")


def _problems_from_pydantic(exc: ValidationError, raw: Any) -> list[Problem]:
    problems: list[Problem] = []
    for err in exc.errors():
        loc = tuple(err["loc"])
        tags = [p for p in loc if _union_tag(p)]
        if tags:  # `candidates` is "auto" or an object: report the branch the input meant
            meant_object = isinstance(raw, dict) and isinstance(raw.get("candidates"), dict)
            if tags[0].startswith("literal[") == meant_object:  # type: ignore[union-attr]
                continue
            loc = tuple(p for p in loc if not _union_tag(p))
        path, kind = _json_path(loc), err["type"]
        value = err.get("input")
        if kind == "extra_forbidden":
            key = str(loc[-1])
            msg = f"unknown key '{key}'{_suggest(key, _fields_at(loc[:-1]))}"
            value = key
        elif kind == "literal_error":
            expected = re.findall(r"'([^']*)'", err.get("ctx", {}).get("expected", ""))
            msg = f"{clip(repr(value))} is not allowed; expected one of {expected}"
            if isinstance(value, str):
                msg += _suggest(value, expected)
            if loc == ("candidates",):
                msg = f'{clip(repr(value))} is not allowed; use "auto" or an object with include/exclude lists'
        elif kind == "missing":
            msg, value = "required field is missing", None
        else:
            msg = f"{err['msg']} (got {clip(repr(value))})" if not isinstance(value, dict | list) else err["msg"]
        problems.append(Problem("SPEC_INVALID", path, kind, msg, value if not isinstance(value, dict) else None))
    return problems


def _semantic_problems(raw: dict[str, Any], base_dir: Path) -> list[Problem]:
    """Cross-field rules, checked on the raw document so they run even when other fields fail."""
    problems: list[Problem] = []

    def add(path: str, rule: str, msg: str, value: Any = None, code: str = "SPEC_INVALID") -> None:
        problems.append(Problem(code, path, rule, msg, value))

    dataset = raw.get("dataset")
    if isinstance(dataset, dict):
        path, ds_id = dataset.get("path"), dataset.get("id")
        if (path is None) == (ds_id is None):
            add("dataset", "path_or_id", "give exactly one of `path` (a file) or `id` (a registered dataset)")
        if isinstance(path, str) and re.match(r"^[A-Za-z][A-Za-z0-9+.-]*://", path):
            add(
                "dataset.path",
                "path_is_url",
                f"'{clip(path)}' is a URL; automl reads local files only: download it, then give its path",
                path,
            )
        elif isinstance(path, str) and any(ord(c) < 0x20 for c in path):
            add("dataset.path", "path_control", "the path holds a control character (a NUL byte?); no file has it")
        elif isinstance(path, str) and path:
            p = Path(path)
            if not p.is_absolute():
                lexical = Path(os.path.normpath(base_dir / p))
                resolved = (base_dir / p).resolve()
                if not lexical.is_relative_to(os.path.normpath(base_dir)):
                    add(
                        "dataset.path",
                        "path_escape",
                        f"'{clip(path)}' leaves the spec's folder through '..'; use an absolute path "
                        "or move the data under the spec's folder",
                        path,
                    )
                elif not resolved.is_relative_to(base_dir.resolve()):
                    add(
                        "dataset.path",
                        "path_escape",
                        f"'{clip(path)}' is a symbolic link (or passes through one) to {resolved}, outside the "
                        "spec's folder; use that absolute path, or move the data under the spec's folder",
                        path,
                    )
            suffix_fmt = Path(path).suffix.lower() in (".csv", ".parquet", ".pq")
            if dataset.get("format") is None and not suffix_fmt:
                add(
                    "dataset.format",
                    "format_unknown",
                    f"cannot tell the format of '{path}'; set csv or parquet",
                    path,
                )
        target = dataset.get("target")
        drop = dataset.get("drop")
        if isinstance(target, str) and isinstance(drop, list):
            for i, col in enumerate(drop):
                if col == target:
                    add(f"dataset.drop[{i}]", "drop_target", f"the target '{target}' cannot be dropped", col)
        if isinstance(target, str) and dataset.get("id_column") == target:
            add("dataset.id_column", "id_is_target", "the id column cannot be the target", target)

    budget = raw.get("budget")
    if isinstance(budget, dict):
        time_s = budget.get("time_s", 300.0)
        if time_s is None and budget.get("trials") is None:
            add("budget", "budget_empty", "give `time_s`, `trials` or both; a job needs a limit")
        trial_time = budget.get("trial_time_s")
        numeric = (int, float)
        if isinstance(trial_time, numeric) and isinstance(time_s, numeric) and trial_time > time_s:
            add(
                "budget.trial_time_s",
                "trial_over_budget",
                f"{trial_time} s exceeds budget.time_s ({time_s} s)",
                trial_time,
            )

    task, metric = raw.get("task"), raw.get("metric")
    if isinstance(metric, str):
        tasks = ["binary", "multiclass"] if task == "classification" else [task]
        allowed = sorted({m for t in tasks if isinstance(t, str) for m in METRIC_NAMES.get(t, ())})
        all_names = sorted({m for names in METRIC_NAMES.values() for m in names})
        if metric not in all_names:
            add("metric", "metric_unknown", f"unknown metric '{metric}'{_suggest(metric, all_names)}", metric)
        elif allowed and metric not in allowed:
            add(
                "metric",
                "metric_task",
                f"'{metric}' does not fit task '{task}'; use one of {allowed}",
                metric,
            )

    cands = raw.get("candidates")
    if isinstance(cands, dict):
        include, exclude = cands.get("include"), cands.get("exclude") or []
        if isinstance(include, list) and isinstance(exclude, list):
            both = sorted(set(map(str, include)) & set(map(str, exclude)))
            if both:
                add(
                    "candidates.exclude",
                    "include_exclude_overlap",
                    f"{both} are both included and excluded",
                    both,
                )
        pool = include if isinstance(include, list) else list(FAMILY_NAMES)
        if isinstance(exclude, list) and pool and set(map(str, pool)) <= set(map(str, exclude)):
            add(
                "candidates.exclude",
                "nothing_left",
                "every model family is excluded; leave at least one",
                exclude,
            )
    return problems


def _dataset_problems(loaded: LoadedSpec) -> tuple[list[Problem], Any]:
    """Check the spec against its data file, when the spec points at a reachable file; returns the
    problems and the table read (None when there is no file to read)."""
    from automl.datasets import load_table, table_width_problems, target_problems
    from automl.errors import AutomlError

    path = loaded.dataset_path()
    if path is None:
        return [], None
    ds = loaded.spec.dataset
    try:
        table = load_table(path, ds.format)
    except AutomlError as exc:
        return [Problem(exc.code, "dataset.path", "dataset_readable", str(exc), ds.path)], None
    problems = table_width_problems(table.frame, list(ds.drop), loaded.spec.budget.time_s)
    found = target_problems(table.frame, ds.target, loaded.spec.task, ds.drop, ds.id_column, table.profile)
    return problems + found, table


def _not_text(value: Any, path: str = "") -> str | None:
    """The JSON path of the first string (key or value) that is not valid text, if any."""
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return path or "$"
        return None
    if isinstance(value, dict):
        for key, item in value.items():
            inner = f"{path}.{key}" if path else str(key)
            found = _not_text(key, path or "$") or _not_text(item, inner)
            if found:
                return found.encode("utf-8", "backslashreplace").decode()
    if isinstance(value, list):
        for index, item in enumerate(value):
            found = _not_text(item, f"{path}[{index}]")
            if found:
                return found
    return None


def parse_spec(
    raw: Any, *, source: str = "<spec>", base_dir: Path | None = None, check_data: bool = True
) -> LoadedSpec:
    """Validate a decoded spec document; raises SpecInvalid with every problem found."""
    base_dir = base_dir or Path.cwd()
    if not isinstance(raw, dict):
        raise SpecInvalid(
            [Problem("SPEC_INVALID", "$", "type", f"a spec is a JSON object, got {type(raw).__name__}")],
            source=source,
        )
    raw = {k: v for k, v in raw.items() if k != "$schema"}  # editor metadata, not part of the spec
    not_text = _not_text(raw)
    if not_text:
        raise SpecInvalid(
            [Problem("SPEC_INVALID", not_text, "not_text", "holds a lone surrogate escape (like \\ud800), not text")],
            source=source,
        )
    problems = _semantic_problems(raw, base_dir)
    spec = None
    try:
        spec = JobSpec.model_validate(raw)
    except ValidationError as exc:
        problems = _problems_from_pydantic(exc, raw) + problems
    if spec is not None and not problems:
        loaded = LoadedSpec(spec, source, base_dir)
        if check_data:
            found, table = _dataset_problems(loaded)
            problems += found
            loaded = dataclasses.replace(loaded, table=table)
        if not problems:
            return loaded
    seen: set[tuple[str, str]] = set()
    unique = [p for p in problems if not ((p.path, p.rule) in seen or seen.add((p.path, p.rule)))]  # type: ignore[func-returns-value]
    raise SpecInvalid(unique, source=source)


MAX_SPEC_BYTES = 1024 * 1024  # a spec is a few hundred bytes; a megabyte is not a spec


def _no_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    repeated = sorted(k for k, n in Counter(k for k, _ in pairs).items() if n > 1)
    if repeated:
        raise ValueError(f"the key(s) {', '.join(repr(k) for k in repeated)} appear more than once in one object")
    return dict(pairs)


def load_spec_file(path: str | Path, *, check_data: bool = True) -> LoadedSpec:
    """Read, decode and validate a spec file (UTF-8, a byte-order mark allowed; at most
    :data:`MAX_SPEC_BYTES`; no key twice in one object)."""
    path = Path(path)

    def refuse(rule: str, message: str) -> SpecInvalid:
        return SpecInvalid([Problem("SPEC_INVALID", "$", rule, message)], source=str(path))

    try:
        info = path.stat()
        if not stat.S_ISREG(info.st_mode):
            raise refuse("not_a_file", f"{path} is not a regular file; give the path of a JSON spec file")
        if info.st_size > MAX_SPEC_BYTES:
            raise refuse("too_large", f"{path} is {info.st_size:,} bytes; a spec is at most {MAX_SPEC_BYTES:,} bytes")
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise SpecInvalid([Problem("SPEC_INVALID", "$", "file_missing", f"spec file {path} does not exist")]) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise SpecInvalid([Problem("SPEC_INVALID", "$", "file_unreadable", f"cannot read {path}: {exc}")]) from exc
    if not text.strip():
        raise refuse("empty", "the spec file is empty")
    try:
        raw = json.loads(text, object_pairs_hook=_no_duplicate_keys)
    except RecursionError:
        raise refuse("json", "not a spec: JSON nested too deeply") from None
    except json.JSONDecodeError as exc:
        raise refuse("json", f"not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}") from exc
    except ValueError as exc:  # a key twice, an integer of thousands of digits
        raise refuse("json", f"not a spec: {exc}") from None
    return parse_spec(raw, source=str(path), base_dir=path.resolve().parent, check_data=check_data)
