"""Job specs: every malformed spec is refused with its JSON path and rule, and nothing is written."""

from __future__ import annotations

import copy
import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from typer.testing import CliRunner, Result

import automl.cli.common
from automl.cli import app
from automl.errors import Problem, SpecInvalid
from automl.spec import FAMILY_NAMES, json_schema, load_spec_file, parse_spec, spec_hash
from automl.store import open_store

REPO = Path(__file__).resolve().parents[1]
DATA = REPO / "jobspecs" / "data"
SCHEMA_FILE = REPO / "jobspecs" / "jobspec.schema.json"
SHIPPED = sorted(p for p in (REPO / "jobspecs").glob("*.json") if p != SCHEMA_FILE)
REGENERATE = "automl schema -o jobspecs/jobspec.schema.json"

# A valid spec; each case below breaks it in one way. Its data sits next to it as titanic.csv.
BASE: dict[str, Any] = {
    "spec_version": 1,
    "name": "titanic-survival",
    "dataset": {"path": "titanic.csv", "target": "survived", "drop": ["alive"]},
    "task": "classification",
    "metric": "roc_auc",
    "budget": {"time_s": 60, "trial_time_s": 20},
    "cv": {"folds": 5},
    "holdout_fraction": 0.2,
    "ensemble": {"enabled": True, "max_size": 5},
    "register": {"model_name": "titanic", "promote": "never"},
    "seed": 0,
}

# A mutation gets a deep copy of BASE and the spec's folder (to write data files into) and
# returns the document to write as the spec.
Mutation = Callable[[dict[str, Any], Path], Any]


def _walk(doc: dict[str, Any], dotted: str) -> tuple[dict[str, Any], str]:
    *parents, last = dotted.split(".")
    for key in parents:
        doc = doc.setdefault(key, {})
    return doc, last


def set_(**changes: Any) -> Mutation:
    """Set fields by dotted path (``dataset__target`` for ``dataset.target``)."""

    def mutate(doc: dict[str, Any], folder: Path) -> Any:
        for key, value in changes.items():
            parent, last = _walk(doc, key.replace("__", "."))
            parent[last] = value
        return doc

    return mutate


def del_(*keys: str) -> Mutation:
    def mutate(doc: dict[str, Any], folder: Path) -> Any:
        for key in keys:
            parent, last = _walk(doc, key)
            del parent[last]
        return doc

    return mutate


def rename(dotted: str, new_name: str) -> Mutation:
    def mutate(doc: dict[str, Any], folder: Path) -> Any:
        parent, last = _walk(doc, dotted)
        parent[new_name] = parent.pop(last)
        return doc

    return mutate


def with_data(name: str, content: bytes, **changes: Any) -> Mutation:
    """Write ``content`` as ``name`` (relative to the spec's folder) and point the spec at it."""

    def mutate(doc: dict[str, Any], folder: Path) -> Any:
        target = folder / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(content)
        doc["dataset"]["path"] = name
        return set_(**changes)(doc, folder)

    return mutate


def then(*mutations: Mutation) -> Mutation:
    def mutate(doc: dict[str, Any], folder: Path) -> Any:
        for m in mutations:
            doc = m(doc, folder)
        return doc

    return mutate


ONE_CLASS_CSV = b"x,label\n" + b"".join(f"{i},yes\n".encode() for i in range(30))

# (id, mutation, code, path, rule, text the message must contain)
CASES: list[tuple[str, Mutation, str, str, str, str | None]] = [
    # wrong types and ranges
    ("name-int", set_(name=123), "SPEC_INVALID", "name", "string_type", "123"),
    ("name-empty", set_(name=""), "SPEC_INVALID", "name", "string_pattern_mismatch", None),
    ("folds-string", set_(cv__folds="five"), "SPEC_INVALID", "cv.folds", "int_type", "five"),
    # no coercion that hides a mistake: a boolean is not a number, a quoted number is a string
    ("trials-bool", set_(budget__trials=True), "SPEC_INVALID", "budget.trials", "int_type", "True"),
    ("time-string", set_(budget__time_s="15"), "SPEC_INVALID", "budget.time_s", "float_type", "'15'"),
    ("seed-float", set_(seed=1.5), "SPEC_INVALID", "seed", "int_type", "1.5"),
    ("spec-version-bool", set_(spec_version=True), "SPEC_INVALID", "spec_version", "int_type", "boolean"),
    ("n-jobs-huge", set_(n_jobs=10**9), "SPEC_INVALID", "n_jobs", "less_than_equal", "256"),
    ("folds-one", set_(cv__folds=1), "SPEC_INVALID", "cv.folds", "greater_than_equal", None),
    ("seed-negative", set_(seed=-1), "SPEC_INVALID", "seed", "greater_than_equal", "-1"),
    ("holdout-0.9", set_(holdout_fraction=0.9), "SPEC_INVALID", "holdout_fraction", "less_than_equal", "0.9"),
    ("holdout-zero", set_(holdout_fraction=0), "SPEC_INVALID", "holdout_fraction", "greater_than", None),
    ("n-jobs-zero", set_(n_jobs=0), "SPEC_INVALID", "n_jobs", "n_jobs_zero", "-1"),
    ("ensemble-size-one", set_(ensemble__max_size=1), "SPEC_INVALID", "ensemble.max_size", "greater_than_equal", None),
    (
        "ensemble-enabled-word",
        set_(ensemble__enabled="maybe"),
        "SPEC_INVALID",
        "ensemble.enabled",
        "bool_type",
        None,
    ),
    # unknown keys, with suggestions
    (
        "dataset-tagret",
        rename("dataset.target", "tagret"),
        "SPEC_INVALID",
        "dataset.tagret",
        "extra_forbidden",
        "did you mean 'target'",
    ),
    ("top-budgt", rename("budget", "budgt"), "SPEC_INVALID", "budgt", "extra_forbidden", "did you mean 'budget'"),
    ("top-unknown-key", set_(colour="blue"), "SPEC_INVALID", "colour", "extra_forbidden", "unknown key 'colour'"),
    # candidates
    (
        "include-misspelled",
        set_(candidates={"include": ["xgbost"]}),
        "SPEC_INVALID",
        "candidates.include[0]",
        "literal_error",
        "did you mean 'xgboost'",
    ),
    (
        "include-second-misspelled",
        set_(candidates={"include": ["linear", "random_forrest"]}),
        "SPEC_INVALID",
        "candidates.include[1]",
        "literal_error",
        "did you mean 'random_forest'",
    ),
    (
        "exclude-unknown",
        set_(candidates={"exclude": ["tabpfn"]}),
        "SPEC_INVALID",
        "candidates.exclude[0]",
        "literal_error",
        "tabpfn",
    ),
    (
        "include-exclude-overlap",
        set_(candidates={"include": ["linear", "xgboost"], "exclude": ["xgboost"]}),
        "SPEC_INVALID",
        "candidates.exclude",
        "include_exclude_overlap",
        "xgboost",
    ),
    (
        "exclude-everything",
        set_(candidates={"exclude": list(FAMILY_NAMES)}),
        "SPEC_INVALID",
        "candidates.exclude",
        "nothing_left",
        None,
    ),
    ("candidates-word", set_(candidates="all"), "SPEC_INVALID", "candidates", "literal_error", "auto"),
    # budgets
    ("time-zero", set_(budget={"time_s": 0}), "SPEC_INVALID", "budget.time_s", "greater_than", None),
    ("time-negative", set_(budget={"time_s": -10}), "SPEC_INVALID", "budget.time_s", "greater_than", "-10"),
    ("trials-zero", set_(budget={"trials": 0}), "SPEC_INVALID", "budget.trials", "greater_than_equal", None),
    (
        "trial-over-budget",
        set_(budget={"time_s": 60, "trial_time_s": 120}),
        "SPEC_INVALID",
        "budget.trial_time_s",
        "trial_over_budget",
        "120",
    ),
    (
        "budget-empty",
        set_(budget={"time_s": None, "trials": None}),
        "SPEC_INVALID",
        "budget",
        "budget_empty",
        None,
    ),
    # metric
    ("metric-unknown", set_(metric="rmsee"), "SPEC_INVALID", "metric", "metric_unknown", "did you mean 'rmse'"),
    ("metric-task", set_(metric="rmse"), "SPEC_INVALID", "metric", "metric_task", "classification"),
    # dataset section
    ("target-missing", del_("dataset.target"), "SPEC_INVALID", "dataset.target", "missing", None),
    (
        "target-not-in-data",
        set_(dataset__target="survivd"),
        "DATASET_INVALID",
        "dataset.target",
        "column_missing",
        "did you mean 'survived'",
    ),
    (
        "drop-not-in-data",
        set_(dataset__drop=["alive", "ticket"]),
        "DATASET_INVALID",
        "dataset.drop[1]",
        "column_missing",
        "ticket",
    ),
    ("drop-target", set_(dataset__drop=["survived"]), "SPEC_INVALID", "dataset.drop[0]", "drop_target", None),
    ("path-and-id", set_(dataset__id=1), "SPEC_INVALID", "dataset", "path_or_id", None),
    ("neither-path-nor-id", del_("dataset.path"), "SPEC_INVALID", "dataset", "path_or_id", None),
    (
        "path-escape",
        with_data("../x.csv", (DATA / "titanic.csv").read_bytes()),
        "SPEC_INVALID",
        "dataset.path",
        "path_escape",
        "..",
    ),
    (
        "data-missing",
        set_(dataset__path="nowhere.csv"),
        "DATASET_NOT_FOUND",
        "dataset.path",
        "dataset_readable",
        "does not exist",
    ),
    ("data-empty", with_data("empty.csv", b""), "DATASET_UNREADABLE", "dataset.path", "dataset_readable", "empty"),
    (
        "data-not-utf8",
        with_data("latin1.csv", "survived,name\n1,Zoë\n0,Ana\n".encode("latin-1")),
        "DATASET_UNREADABLE",
        "dataset.path",
        "dataset_readable",
        "line 2",
    ),
    (
        "format-unknown",
        with_data("data.txt", (DATA / "titanic.csv").read_bytes()),
        "SPEC_INVALID",
        "dataset.format",
        "format_unknown",
        "data.txt",
    ),
    ("format-word", set_(dataset__format="excel"), "SPEC_INVALID", "dataset.format", "literal_error", None),
    # top-level values
    ("spec-version-2", set_(spec_version=2), "SPEC_INVALID", "spec_version", "literal_error", None),
    ("task-clustering", set_(task="clustering"), "SPEC_INVALID", "task", "literal_error", "clustering"),
    (
        "promote-sometimes",
        set_(register__promote="sometimes"),
        "SPEC_INVALID",
        "register.promote",
        "literal_error",
        None,
    ),
    (
        "model-name-spaces",
        set_(register__model_name="my model"),
        "SPEC_INVALID",
        "register.model_name",
        "string_pattern_mismatch",
        "my model",
    ),
    ("spec-is-list", lambda doc, folder: [doc], "SPEC_INVALID", "$", "type", "list"),
    # the target against the data
    (
        "regression-text-target",
        then(set_(task="regression", dataset__target="sex"), del_("metric")),
        "DATASET_INVALID",
        "task",
        "target_not_numeric",
        "'sex'",
    ),
    (
        "one-class",
        with_data("one.csv", ONE_CLASS_CSV, dataset__target="label", dataset__drop=[]),
        "DATASET_INVALID",
        "dataset.target",
        "target_one_class",
        "single class",
    ),
]


def _write_spec(tmp_path: Path, mutation: Mutation | None) -> Path:
    folder = tmp_path / "specs"
    folder.mkdir(exist_ok=True)
    shutil.copyfile(DATA / "titanic.csv", folder / "titanic.csv")
    doc: Any = copy.deepcopy(BASE)
    if mutation is not None:
        doc = mutation(doc, folder)
    path = folder / "spec.json"
    path.write_text(json.dumps(doc, indent=2))
    return path


def _cli(args: list[str], tmp_path: Path, db_url: str | None = None) -> Result:
    automl.cli.common.settings.cache_clear()
    env = {
        "AUTOML_DATABASE_URL": db_url or f"sqlite:///{tmp_path / 'cli.db'}",
        "AUTOML_ARTIFACT_ROOT": str(tmp_path / "art"),
    }
    try:
        return CliRunner().invoke(app, args, env=env)
    finally:
        automl.cli.common.settings.cache_clear()


def _has(problems: list[Problem], code: str, path: str, rule: str) -> Problem:
    for p in problems:
        if (p.code, p.path, p.rule) == (code, path, rule):
            return p
    raise AssertionError(f"no problem ({code}, {path}, {rule}) among {[(p.code, p.path, p.rule) for p in problems]}")


def test_base_spec_is_valid(tmp_path: Path) -> None:
    loaded = load_spec_file(_write_spec(tmp_path, None))
    assert loaded.spec.dataset.target == "survived"
    assert loaded.dataset_path() == tmp_path / "specs" / "titanic.csv"


def test_cases_are_many_and_distinct() -> None:
    assert len(CASES) >= 30
    assert len({c[0] for c in CASES}) == len(CASES)


@pytest.mark.parametrize(
    ("mutation", "code", "path", "rule", "text"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_malformed_spec_is_refused_and_nothing_is_written(
    tmp_path: Path, sqlite_url: str, mutation: Mutation, code: str, path: str, rule: str, text: str | None
) -> None:
    spec_file = _write_spec(tmp_path, mutation)
    store = open_store(sqlite_url)
    try:
        with pytest.raises(SpecInvalid) as info:
            load_spec_file(spec_file)
        problem = _has(info.value.problems, code, path, rule)
        if text is not None:
            assert text in problem.message
        assert info.value.exit_code == 2

        result = _cli(["validate", "--json", str(spec_file)], tmp_path, sqlite_url)
        assert result.exit_code == 2, result.output
        [report] = json.loads(result.stdout)
        assert report["valid"] is False
        assert {"code": code, "path": path, "rule": rule} in [
            {k: p[k] for k in ("code", "path", "rule")} for p in report["problems"]
        ]

        assert store.list_datasets() == []
        assert store.list_jobs() == []
        assert not (tmp_path / "art").exists() or not any((tmp_path / "art").iterdir())
    finally:
        store.close()


def test_absolute_path_outside_the_folder_is_allowed(tmp_path: Path) -> None:
    outside = tmp_path / "elsewhere" / "titanic.csv"
    outside.parent.mkdir()
    shutil.copyfile(DATA / "titanic.csv", outside)
    spec_file = _write_spec(tmp_path, set_(dataset__path=str(outside)))
    loaded = load_spec_file(spec_file)
    assert loaded.dataset_path() == outside


def test_format_set_explicitly_reads_any_suffix(tmp_path: Path) -> None:
    spec_file = _write_spec(tmp_path, with_data("data.txt", (DATA / "titanic.csv").read_bytes(), dataset__format="csv"))
    assert load_spec_file(spec_file).spec.dataset.format == "csv"


def test_no_data_check_skips_the_data_file(tmp_path: Path) -> None:
    spec_file = _write_spec(tmp_path, set_(dataset__path="nowhere.csv"))
    assert load_spec_file(spec_file, check_data=False).spec.dataset.path == "nowhere.csv"
    result = _cli(["validate", "--no-data", str(spec_file)], tmp_path)
    assert result.exit_code == 0, result.output


def test_schema_key_is_ignored(tmp_path: Path) -> None:
    spec_file = _write_spec(tmp_path, set_(**{"$schema": "./jobspec.schema.json"}))
    assert load_spec_file(spec_file).spec.name == "titanic-survival"


# -- several problems at once ---------------------------------------------------------------------

FOUR_ERRORS = then(
    set_(name=123, metric="rmsee", candidates={"include": ["xgbost"]}),
    set_(budget={"time_s": 0}),
)
FOUR_PATHS = {"name", "metric", "candidates.include[0]", "budget.time_s"}


def test_every_problem_is_reported_at_once(tmp_path: Path) -> None:
    spec_file = _write_spec(tmp_path, FOUR_ERRORS)
    with pytest.raises(SpecInvalid) as info:
        load_spec_file(spec_file)
    paths = {p.path for p in info.value.problems}
    assert paths >= FOUR_PATHS
    assert len(info.value.problems) == 4
    assert "4 problem(s)" in info.value.message
    assert info.value.to_dict()["problems"] == [p.to_dict() for p in info.value.problems]

    result = _cli(["validate", "--json", str(spec_file)], tmp_path)
    assert result.exit_code == 2
    [report] = json.loads(result.stdout)
    assert {p["path"] for p in report["problems"]} == FOUR_PATHS


def test_parse_spec_dedupes_and_reports_source(tmp_path: Path) -> None:
    with pytest.raises(SpecInvalid) as info:
        parse_spec({"spec_version": 1}, source="inline", base_dir=tmp_path)
    assert info.value.source == "inline"
    keys = [(p.path, p.rule) for p in info.value.problems]
    assert len(keys) == len(set(keys))
    assert {"name", "dataset", "task"} <= {p.path for p in info.value.problems}


# -- files that are not specs ---------------------------------------------------------------------


def test_not_json_names_line_and_column(tmp_path: Path) -> None:
    spec_file = tmp_path / "bad.json"
    spec_file.write_text('{\n  "spec_version": 1,\n  name: "x"\n}\n')
    with pytest.raises(SpecInvalid) as info:
        load_spec_file(spec_file)
    [problem] = info.value.problems
    assert (problem.path, problem.rule) == ("$", "json")
    assert "line 3 column 3" in problem.message


@pytest.mark.parametrize("text", ["", "  \n\t\n"], ids=["zero-bytes", "whitespace"])
def test_empty_spec_file(tmp_path: Path, text: str) -> None:
    spec_file = tmp_path / "empty.json"
    spec_file.write_text(text)
    with pytest.raises(SpecInvalid) as info:
        load_spec_file(spec_file)
    assert [(p.path, p.rule) for p in info.value.problems] == [("$", "empty")]


def test_missing_spec_file(tmp_path: Path) -> None:
    with pytest.raises(SpecInvalid) as info:
        load_spec_file(tmp_path / "nope.json")
    assert info.value.problems[0].rule == "file_missing"


@pytest.mark.parametrize(
    ("text", "rule", "words"),
    [
        ("[" * 100_000 + "]" * 100_000, "json", "nested too deeply"),
        ('{"spec_version": 1, "name": "a", "name": "b"}', "json", "'name' appear more than once"),
        ('{"spec_version": 1, "seed": ' + "9" * 5000 + "}", "json", "4300 digits"),
        (" " * (1024 * 1024 + 1), "too_large", "at most 1,048,576 bytes"),
    ],
    ids=["deep", "duplicate-key", "huge-integer", "too-large"],
)
def test_hostile_spec_files_get_a_named_problem(tmp_path: Path, text: str, rule: str, words: str) -> None:
    spec_file = tmp_path / "hostile.json"
    spec_file.write_text(text)
    with pytest.raises(SpecInvalid) as info:
        load_spec_file(spec_file)
    [problem] = info.value.problems
    assert (problem.path, problem.rule) == ("$", rule) and words in problem.message


@pytest.mark.parametrize(
    ("dataset", "path", "rule"),
    [
        ({"path": "d\u0000.csv"}, "dataset.path", "path_control"),
        ({"path": "https://example.com/d.csv"}, "dataset.path", "path_is_url"),
        ({"path": "d.csv", "drop": ["\ud800"]}, "dataset.drop[0]", "not_text"),
        ({"path": "d.csv", "drop": [f"c{i}" for i in range(10_001)]}, "dataset.drop", "too_long"),
    ],
    ids=["nul-byte", "url", "lone-surrogate", "huge-drop"],
)
def test_odd_dataset_fields_get_a_named_problem(tmp_path: Path, dataset: dict[str, Any], path: str, rule: str) -> None:
    document = {"spec_version": 1, "name": "odd", "task": "regression", "dataset": {"target": "y", **dataset}}
    with pytest.raises(SpecInvalid) as info:
        parse_spec(document, base_dir=tmp_path, check_data=False)
    assert (path, rule) in [(p.path, p.rule) for p in info.value.problems]


def test_a_symlink_out_of_the_folder_is_named_as_such(tmp_path: Path) -> None:
    outside = tmp_path / "outside.csv"
    outside.write_text("x,y\n1,2\n")
    folder = tmp_path / "specs"
    folder.mkdir()
    (folder / "link.csv").symlink_to(outside)
    document = {"spec_version": 1, "name": "link", "task": "regression", "dataset": {"path": "link.csv", "target": "y"}}
    with pytest.raises(SpecInvalid) as info:
        parse_spec(document, base_dir=folder, check_data=False)
    [problem] = info.value.problems
    assert problem.rule == "path_escape" and "symbolic link" in problem.message and "'..'" not in problem.message


def test_a_device_is_not_read_as_a_spec() -> None:
    with pytest.raises(SpecInvalid) as info:
        load_spec_file("/dev/zero")  # would read until memory runs out
    assert info.value.problems[0].rule == "not_a_file"


def test_a_byte_order_mark_is_accepted(tmp_path: Path) -> None:
    spec_file = tmp_path / "bom.json"
    document = {"spec_version": 1, "name": "bom", "task": "regression", "dataset": {"path": "d.csv", "target": "y"}}
    spec_file.write_text(json.dumps(document), encoding="utf-8-sig")
    assert load_spec_file(spec_file, check_data=False).spec.name == "bom"


def test_a_huge_value_is_shown_by_its_start_and_size(tmp_path: Path) -> None:
    spec_file = tmp_path / "long.json"
    long_name = "-" * 900_000
    document = {"spec_version": 1, "name": long_name, "task": "regression", "dataset": {"path": "d.csv", "target": "y"}}
    spec_file.write_text(json.dumps(document))
    with pytest.raises(SpecInvalid) as info:
        load_spec_file(spec_file, check_data=False)
    assert len(str(info.value)) < 2_000 and "900,002 characters" in str(info.value)  # the quoted value


# -- shipped specs and the committed schema -------------------------------------------------------


def test_there_are_shipped_specs() -> None:
    assert len(SHIPPED) >= 3


@pytest.mark.parametrize("path", SHIPPED, ids=[p.stem for p in SHIPPED])
def test_shipped_spec_validates(path: Path) -> None:
    loaded = load_spec_file(path)
    assert loaded.dataset_path() is not None and loaded.dataset_path().is_file()  # type: ignore[union-attr]


def test_validate_command_on_shipped_specs(tmp_path: Path) -> None:
    result = _cli(["validate", *map(str, SHIPPED)], tmp_path)
    assert result.exit_code == 0, result.output
    for path in SHIPPED:
        assert path.name in result.output


def test_validate_notes_what_the_job_will_leave_out_of_valid_data(tmp_path: Path) -> None:
    frame = pd.read_csv(DATA / "penguins.csv")
    frame.loc[5, "species"] = "Unseen"  # a class of one row: its row is left out, not refused
    frame.to_csv(tmp_path / "penguins.csv", index=False)
    doc = {
        "spec_version": 1,
        "name": "p",
        "task": "classification",
        "dataset": {"path": "penguins.csv", "target": "species"},
    }
    (tmp_path / "spec.json").write_text(json.dumps(doc))
    result = _cli(["validate", "--json", str(tmp_path / "spec.json")], tmp_path)
    assert result.exit_code == 0, result.output
    [checked] = json.loads(result.stdout)
    assert checked["valid"] and any("'Unseen'" in n and "1 row(s) are left out" in n for n in checked["notes"])
    # The shipped titanic spec drops `alive` itself: no note restates that.
    shipped = json.loads(_cli(["validate", "--json", str(REPO / "jobspecs" / "titanic.json")], tmp_path).stdout)
    assert shipped[0]["notes"] and not [n for n in shipped[0]["notes"] if "'alive'" in n]


def test_validate_command_on_a_broken_copy(tmp_path: Path) -> None:
    doc = json.loads((REPO / "jobspecs" / "titanic.json").read_text())
    doc["dataset"]["path"] = str(DATA / "titanic.csv")
    doc["cv"]["folds"] = 1
    doc["metric"] = "rmse"
    doc["dataset"]["drop"] = ["survived"]
    broken = tmp_path / "broken.json"
    broken.write_text(json.dumps(doc))
    result = _cli(["validate", str(REPO / "jobspecs" / "penguins.json"), str(broken)], tmp_path)
    assert result.exit_code == 2
    flat = "".join(result.output.split())  # the table folds long cells at the terminal width
    assert "penguins.json" in flat
    assert "broken.json:3problem(s)" in flat
    for path in ("cv.folds", "metric", "dataset.drop[0]"):
        assert path in flat
    for rule in ("greater_than_equal", "metric_task", "drop_target"):
        assert rule in flat


def test_committed_schema_matches_the_models() -> None:
    assert SCHEMA_FILE.is_file(), f"{SCHEMA_FILE} is missing; run `{REGENERATE}`"
    committed = json.loads(SCHEMA_FILE.read_text())
    current = json.loads(json.dumps(json_schema()))
    assert committed == current, f"jobspecs/jobspec.schema.json is stale; run `{REGENERATE}` and commit it"


def test_schema_command_prints_the_schema(tmp_path: Path) -> None:
    result = _cli(["schema"], tmp_path)
    assert result.exit_code == 0
    assert json.loads(result.stdout) == json.loads(SCHEMA_FILE.read_text())
    out = tmp_path / "schema.json"
    assert _cli(["schema", "-o", str(out)], tmp_path).exit_code == 0
    assert out.read_text() == SCHEMA_FILE.read_text()


def test_shipped_specs_satisfy_the_schema() -> None:
    jsonschema = pytest.importorskip("jsonschema")
    schema = json.loads(SCHEMA_FILE.read_text())
    for path in SHIPPED:
        jsonschema.validate(json.loads(path.read_text()), schema)


def test_family_names_match_the_registry() -> None:
    from automl.candidates import family_names

    assert list(FAMILY_NAMES) == family_names()


# -- spec hash ------------------------------------------------------------------------------------


def test_spec_hash_is_stable(tmp_path: Path) -> None:
    first = parse_spec(copy.deepcopy(BASE), base_dir=tmp_path, check_data=False)
    reordered = dict(reversed(list(copy.deepcopy(BASE).items())))
    second = parse_spec(reordered, base_dir=tmp_path, check_data=False)
    assert first.hash == second.hash == spec_hash(first.spec)
    assert len(first.hash) == 64
    reseeded = parse_spec({**copy.deepcopy(BASE), "seed": 1}, base_dir=tmp_path, check_data=False)
    assert reseeded.hash != first.hash


def test_config_command_reports_the_environment(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'cli.db'}"
    result = _cli(["config", "--json"], tmp_path, url)
    assert result.exit_code == 0
    rows = {r["name"]: r for r in json.loads(result.stdout)}
    assert rows["database_url"]["value"] == url
    assert rows["database_url"]["source"] == "environment"
    assert rows["artifact_root"]["value"] == str(tmp_path / "art")
