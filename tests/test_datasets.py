"""Datasets: clear errors for bad files, content fingerprints, registration once per content, profiles."""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner, Result

import automl.cli.common
from automl.artifacts import ArtifactStore
from automl.cli import app
from automl.datasets import load_registered, load_table, register_dataset, stored_key, target_problems
from automl.errors import ArtifactCorrupt, DatasetNotFound, DatasetUnreadable, StoreSchemaStale
from automl.profile import profile_frame, profile_target, with_target
from automl.store.base import Store

REPO = Path(__file__).resolve().parents[1]
SHARED_DATASETS = REPO.parent / "shared" / "datasets"
DATA = REPO / "jobspecs" / "data"
TITANIC = SHARED_DATASETS / "titanic.csv"


def _write(tmp_path: Path, name: str, data: bytes) -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


# -- bad files ------------------------------------------------------------------------------------


def test_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "nope.csv"
    with pytest.raises(DatasetNotFound) as info:
        load_table(path)
    assert info.value.code == "DATASET_NOT_FOUND"
    assert str(path) in info.value.message and "does not exist" in info.value.message
    assert isinstance(info.value, FileNotFoundError)


def test_folder_is_not_a_file(tmp_path: Path) -> None:
    (tmp_path / "dir.csv").mkdir()
    with pytest.raises(DatasetUnreadable, match="is not a file"):
        load_table(tmp_path / "dir.csv")


UNREADABLE: list[tuple[str, bytes, str]] = [
    ("empty.csv", b"", "is empty"),
    ("blank.csv", b"\n\n  \n", "is empty"),
    ("header.csv", b"a,b,c\n", "has a header but no data rows"),
    ("latin1.csv", b"a,b\n1,x\n2,caf\xe9\n", "byte 0xe9 at line 3"),
    ("short.csv", b"a,b,c\n1,2,3\n4,5,6\n7,8\n", "line 4 has 2 fields but the header has 3"),
    ("long.csv", b"a,b\n1,2\n3,4,5\n", "line 3 has 3 fields but the header has 2"),
    ("dups.csv", b"a,b,a,c,c\n1,2,3,4,5\n", "duplicate column names ['a', 'c']"),
    ("noname.csv", b"a,,c\n1,2,3\n", "column 2 has no name"),
    ("corrupt.parquet", b"PAR1 this is not parquet PAR1", "is not a valid Parquet file"),
    ("empty.parquet", b"", "is empty"),
]


@pytest.mark.parametrize(("name", "data", "expected"), UNREADABLE, ids=[c[0] for c in UNREADABLE])
def test_unreadable_files_name_the_problem(tmp_path: Path, name: str, data: bytes, expected: str) -> None:
    path = _write(tmp_path, name, data)
    with pytest.raises(DatasetUnreadable) as info:
        load_table(path)
    assert info.value.code == "DATASET_UNREADABLE"
    assert expected in info.value.message
    assert str(path) in info.value.message
    assert info.value.hint


def test_unknown_suffix_needs_a_format(tmp_path: Path) -> None:
    path = _write(tmp_path, "data.txt", b"a,b\n1,2\n")
    with pytest.raises(DatasetUnreadable, match=r"cannot tell the format of data\.txt"):
        load_table(path)
    assert load_table(path, "csv").frame.shape == (1, 2)


def test_utf8_bom_and_quoted_commas_are_fine(tmp_path: Path) -> None:
    path = _write(tmp_path, "bom.csv", '\ufeffname,city\n"Smith, J",Zürich\n'.encode())
    frame = load_table(path).frame
    assert list(frame.columns) == ["name", "city"]
    assert frame.iloc[0].tolist() == ["Smith, J", "Zürich"]


def test_parquet_round_trip(tmp_path: Path) -> None:
    original = load_table(TITANIC).frame
    path = tmp_path / "titanic.parquet"
    pd.read_csv(TITANIC).to_parquet(path)
    table = load_table(path)
    assert table.format == "parquet"
    assert table.frame.shape == (891, 15)
    assert list(table.frame.columns) == list(original.columns)
    assert int(table.frame["survived"].sum()) == int(original["survived"].sum())
    assert table.frame["age"].isna().sum() == original["age"].isna().sum()
    assert table.fingerprint == hashlib.sha256(path.read_bytes()).hexdigest()


# -- fingerprints ---------------------------------------------------------------------------------


def test_fingerprint_is_sha256_of_the_bytes_and_stable(tmp_path: Path) -> None:
    expected = hashlib.sha256(TITANIC.read_bytes()).hexdigest()
    first, second = load_table(TITANIC), load_table(TITANIC)
    assert first.fingerprint == second.fingerprint == expected
    assert first.size_bytes == TITANIC.stat().st_size
    code = "import sys; from automl.datasets import load_table; print(load_table(sys.argv[1]).fingerprint)"
    out = subprocess.run(
        [sys.executable, "-c", code, str(TITANIC)], capture_output=True, text=True, check=True, cwd=REPO
    )
    assert out.stdout.strip() == expected
    copy = tmp_path / "other-name.csv"
    shutil.copyfile(TITANIC, copy)
    assert load_table(copy).fingerprint == expected


# -- registration ---------------------------------------------------------------------------------


def test_same_content_is_registered_once(store: Store, artifacts: ArtifactStore, tmp_path: Path) -> None:
    record, created = register_dataset(store, artifacts, TITANIC, name="titanic")
    assert created is True
    assert (record.n_rows, record.n_columns, record.format) == (891, 15, "csv")
    assert record.fingerprint == hashlib.sha256(TITANIC.read_bytes()).hexdigest()
    assert record.stored_uri == stored_key(record.fingerprint, "csv") == f"datasets/{record.fingerprint}.csv"
    assert {c["name"] for c in record.profile["columns"]} >= {"survived", "sex", "age"}

    renamed = tmp_path / "passengers.csv"
    shutil.copyfile(TITANIC, renamed)
    again, created_again = register_dataset(store, artifacts, renamed, name="passengers")
    assert created_again is False
    assert again.id == record.id and again.name == "titanic"
    same, created_same = register_dataset(store, artifacts, TITANIC)
    assert (same.id, created_same) == (record.id, False)

    assert [d.id for d in store.list_datasets()] == [record.id]
    assert store.find_dataset(record.fingerprint) == store.get_dataset(record.id)
    stored = sorted((artifacts.root / "datasets").iterdir())
    assert stored == [artifacts.root / "datasets" / f"{record.fingerprint}.csv"]
    assert stored[0].read_bytes() == TITANIC.read_bytes()

    frame = load_registered(record, artifacts)
    assert frame.shape == (891, 15)


def test_different_content_is_a_new_dataset(store: Store, artifacts: ArtifactStore) -> None:
    first, _ = register_dataset(store, artifacts, DATA / "penguins.csv")
    second, created = register_dataset(store, artifacts, DATA / "diabetes.csv")
    assert created is True and second.id != first.id
    assert first.name == "penguins" and second.name == "diabetes"
    assert len(store.list_datasets()) == 2


def test_tampered_copy_is_refused(store: Store, artifacts: ArtifactStore) -> None:
    record, _ = register_dataset(store, artifacts, DATA / "penguins.csv")
    stored = artifacts.path(record.stored_uri)
    stored.write_bytes(stored.read_bytes().replace(b"Adelie", b"Adelia", 1))
    with pytest.raises(ArtifactCorrupt) as info:
        load_registered(record, artifacts)
    assert info.value.code == "ARTIFACT_CORRUPT"
    assert record.fingerprint in info.value.message


def test_unreadable_file_is_not_registered(store: Store, artifacts: ArtifactStore, tmp_path: Path) -> None:
    path = _write(tmp_path, "short.csv", b"a,b\n1\n")
    with pytest.raises(DatasetUnreadable):
        register_dataset(store, artifacts, path)
    assert store.list_datasets() == []
    assert not (artifacts.root / "datasets").exists()


# -- profiles -------------------------------------------------------------------------------------


def test_titanic_profile_kinds() -> None:
    frame = load_table(TITANIC).frame
    profile = profile_frame(frame)
    assert profile.rows == 891
    assert profile.column("sex").kind == "categorical"
    age = profile.column("age")
    assert age.kind == "numeric"
    assert age.missing_fraction == pytest.approx(177 / 891, abs=1e-4)
    assert age.missing_fraction == pytest.approx(0.199, abs=0.001)
    assert set(age.summary) == {"mean", "std", "min", "p25", "p50", "p75", "max"}
    assert age.summary["mean"] == pytest.approx(frame["age"].mean())
    deck = profile.column("deck")
    assert deck.kind == "categorical"
    assert 0 < deck.missing_fraction < 1
    assert any("'deck'" in w and "missing" in w for w in profile.warnings)
    assert profile.column("adult_male").kind == "boolean"
    assert profile.column("alone").kind == "boolean"

    full = with_target(profile, frame, "survived", "binary")
    assert full.leaks == ["alive"]
    assert any("'alive' restates the target 'survived'" in w for w in full.warnings)
    assert full.target is not None
    assert full.target.classes == [0, 1]
    assert full.target.class_counts == {"0": 549, "1": 342}
    # The profile survives JSON (it is stored on the dataset row).
    assert type(full).from_dict(json.loads(json.dumps(full.to_dict()))) == full


def test_id_like_and_constant_columns() -> None:
    frame = pd.DataFrame(
        {
            "id": range(1, 101),
            "x": [i % 7 * 1.5 for i in range(100)],
            "colour": ["red", "green", "blue", "red"] * 25,
            "source": ["web"] * 100,
            "empty": [None] * 100,
        }
    )
    profile = profile_frame(frame)
    assert profile.column("id").kind == "id"
    assert profile.column("x").kind == "numeric"
    assert profile.column("colour").kind == "categorical"
    assert profile.column("source").kind == "constant"
    assert profile.column("empty").kind == "constant"
    assert any("'id' looks like an identifier" in w for w in profile.warnings)
    assert any("'source' is constant" in w for w in profile.warnings)


def test_unique_integers_named_otherwise_and_shuffled_are_numeric() -> None:
    frame = pd.DataFrame({"score": list(range(100, 0, -1))})
    assert profile_frame(frame).column("score").kind == "numeric"


def test_mpg_name_is_not_categorical() -> None:
    profile = profile_frame(load_table(SHARED_DATASETS / "mpg.csv").frame)
    assert profile.column("name").kind in ("id", "text")
    assert profile.column("origin").kind == "categorical"
    assert profile.column("mpg").kind == "numeric"


def test_diabetes_regression_target() -> None:
    frame = load_table(DATA / "diabetes.csv").frame
    target = profile_target(frame, "target", "regression")
    assert target.task == "regression" and target.classes is None and target.class_counts is None
    assert target.summary is not None
    assert target.summary["mean"] == pytest.approx(frame["target"].mean())
    assert target.summary["std"] == pytest.approx(frame["target"].std())
    assert (target.summary["min"], target.summary["max"]) == (25.0, 346.0)
    assert target_problems(frame, "target", "regression", [], None) == []
    assert with_target(profile_frame(frame), frame, "target", "regression").leaks == []


def test_target_problems_on_penguins() -> None:
    frame = load_table(DATA / "penguins.csv").frame
    assert target_problems(frame, "species", "classification", [], None) == []
    [problem] = target_problems(frame, "species", "regression", [], None)
    assert (problem.code, problem.path, problem.rule) == ("DATASET_INVALID", "task", "target_not_numeric")
    [problem] = target_problems(frame, "bill_length_mm", "classification", [], None)
    assert problem.rule == "target_continuous"
    [problem] = target_problems(frame, "species", "classification", [], "row_id")
    assert (problem.path, problem.rule) == ("dataset.id_column", "column_missing")


# -- command line ---------------------------------------------------------------------------------


def _cli(args: list[str], db_url: str, tmp_path: Path) -> Result:
    automl.cli.common.settings.cache_clear()
    env = {"AUTOML_DATABASE_URL": db_url, "AUTOML_ARTIFACT_ROOT": str(tmp_path / "art")}
    try:
        return CliRunner().invoke(app, args, env=env)
    finally:
        automl.cli.common.settings.cache_clear()


def test_datasets_commands(db_url: str, tmp_path: Path) -> None:
    if db_url.startswith("postgresql"):
        stale = _cli(["datasets", "list"], db_url, tmp_path)
        assert isinstance(stale.exception, StoreSchemaStale), stale.output
    upgraded = _cli(["db", "upgrade"], db_url, tmp_path)
    assert upgraded.exit_code == 0, upgraded.output
    current = _cli(["db", "current"], db_url, tmp_path)
    assert current.exit_code == 0 and "up to date" in current.output

    added = _cli(["datasets", "add", str(TITANIC), "--target", "survived", "--json"], db_url, tmp_path)
    assert added.exit_code == 0, added.output
    record = json.loads(added.stdout)
    assert record["created"] is True
    assert (record["n_rows"], record["n_columns"], record["name"]) == (891, 15, "titanic")
    assert record["profile"]["leaks"] == ["alive"]
    assert record["profile"]["target"]["class_counts"] == {"0": 549, "1": 342}
    assert (tmp_path / "art" / record["stored_uri"]).is_file()

    listed = _cli(["datasets", "list", "--json"], db_url, tmp_path)
    assert listed.exit_code == 0, listed.output
    [row] = json.loads(listed.stdout)
    assert row["id"] == record["id"] and row["fingerprint"] == record["fingerprint"]
    assert "profile" not in row

    shown = _cli(["datasets", "show", str(record["id"]), "--json"], db_url, tmp_path)
    assert shown.exit_code == 0, shown.output
    detail = json.loads(shown.stdout)
    kinds = {c["name"]: c["kind"] for c in detail["profile"]["columns"]}
    assert (kinds["sex"], kinds["age"], kinds["adult_male"]) == ("categorical", "numeric", "boolean")

    with_target_shown = _cli(["datasets", "show", str(record["id"]), "--target", "survived"], db_url, tmp_path)
    assert with_target_shown.exit_code == 0, with_target_shown.output
    assert "restates the target" in with_target_shown.output

    again = _cli(["datasets", "add", str(TITANIC)], db_url, tmp_path)
    assert again.exit_code == 0, again.output
    assert "already registered" in again.output
    assert len(json.loads(_cli(["datasets", "list", "--json"], db_url, tmp_path).stdout)) == 1

    table = _cli(["datasets", "list"], db_url, tmp_path)
    assert table.exit_code == 0 and "titanic" in table.output


@pytest.mark.parametrize(
    ("frame", "task", "rule", "words"),
    [
        (pd.DataFrame({"x": range(6), "y": list("aabbcc")}), "classification", "too_few_rows", "6 row(s)"),
        (
            pd.DataFrame({"x": [i % 7 for i in range(30)], "y": ["a"] * 29 + ["c"]}),
            "classification",
            "class_too_small",
            "'c'",
        ),
        (
            pd.DataFrame({"x": range(30), "y": [1.0] * 3 + [float("inf")] + [2.0] * 26}),
            "regression",
            "target_not_finite",
            "data row 4",
        ),
        (
            pd.DataFrame({"k": [1] * 30, "row": range(30), "y": ["a", "b"] * 15}),
            "classification",
            "no_features",
            "'k' (a single value), 'row' (row numbers, counting up by one from 0 or 1)",
        ),
    ],
    ids=["six-rows", "one-row-class", "infinite-target", "only-constant-and-id-columns"],
)
def test_data_a_job_cannot_use_is_named(frame: pd.DataFrame, task: str, rule: str, words: str) -> None:
    [problem] = target_problems(frame, "y", task, [], None)
    path = "dataset" if rule == "no_features" else "dataset.target"
    assert (problem.code, problem.path, problem.rule) == ("DATASET_INVALID", path, rule)
    assert words in problem.message


def test_a_class_seen_once_is_left_out_by_the_job_not_refused() -> None:
    frame = pd.DataFrame({"x": [i % 7 for i in range(30)], "y": ["a"] * 15 + ["b"] * 14 + ["c"]})
    assert target_problems(frame, "y", "classification", [], None) == []


def test_columns_dropped_by_the_spec_leave_no_feature_is_named() -> None:
    frame = pd.DataFrame({"x": [i % 7 for i in range(40)], "z": [0.5, 1.5] * 20, "y": ["a", "b"] * 20})
    assert target_problems(frame, "y", "classification", ["z"], None) == []
    [problem] = target_problems(frame, "y", "classification", ["x", "z"], None)
    assert problem.rule == "no_features" and "keep columns out of `drop`" in problem.message


def test_a_spec_its_data_cannot_serve_stores_nothing(tmp_path: Path) -> None:
    from automl.artifacts import ArtifactStore
    from automl.errors import DatasetInvalid
    from automl.pipeline import submit_job
    from automl.spec import load_spec_file
    from automl.store import open_store

    pd.DataFrame({"x": range(6), "y": list("aabbcc")}).to_csv(tmp_path / "tiny.csv", index=False)
    spec = {
        "spec_version": 1, "name": "tiny", "task": "classification", "dataset": {"path": "tiny.csv", "target": "y"},
    }  # fmt: skip
    (tmp_path / "spec.json").write_text(json.dumps(spec))
    store = open_store(f"sqlite:///{tmp_path / 'store.db'}")
    with pytest.raises(DatasetInvalid):
        submit_job(store, ArtifactStore(tmp_path / "art"), load_spec_file(tmp_path / "spec.json", check_data=False))
    assert store.list_datasets() == [] and store.list_jobs() == []


def test_a_data_set_too_wide_to_prepare_within_the_budget_is_named() -> None:
    from automl.datasets import PREPARE_S_PER_COLUMN, width_problems

    assert width_problems(10_000, 20.0) == []  # about 5 s of 20: it trains
    assert width_problems(10**6, None) == []  # no time budget: nothing to compare with
    [problem] = width_problems(200_000, 60.0)
    assert (problem.code, problem.path, problem.rule) == ("DATASET_INVALID", "dataset", "too_wide_for_budget")
    assert "200,000 columns" in problem.message and "`drop`" in problem.message
    assert f"at least {2 * 200_000 * PREPARE_S_PER_COLUMN:.0f}" in problem.message


def test_a_submitted_table_is_profiled_once_from_the_spec_check_to_the_job(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, store: Store
) -> None:
    import automl.datasets
    from automl.pipeline import start_job, submit_job
    from automl.spec import load_spec_file
    from tests.engine_helpers import write_spec

    profiled: list[int] = []

    def counting(frame: pd.DataFrame) -> object:
        profiled.append(len(frame))
        return profile_frame(frame)

    monkeypatch.setattr(automl.datasets, "profile_frame", counting)
    spec = write_spec(tmp_path, "titanic.csv", dataset={"target": "survived"}, task="classification")
    arts = ArtifactStore(tmp_path / "art")
    job = submit_job(store, arts, load_spec_file(spec))  # checks the spec, then registers the table
    ctx = start_job(store, arts, job.id)
    # One profile serves the spec's checks, the dataset's record and the job's features.
    assert len(profiled) == 1 and ctx.data.profile is not None
    assert (
        store.get_dataset(job.dataset_id).profile
        == automl.datasets.profile_of(
            load_registered(store.get_dataset(job.dataset_id), arts), "unknown content"
        ).to_dict()
    )
    assert len(profiled) == 2  # an unknown content is profiled afresh


def test_a_job_run_by_the_submitting_process_reads_the_table_it_checked(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, store: Store
) -> None:
    import gc

    import automl.datasets
    from automl.pipeline import start_job, submit_job
    from automl.spec import load_spec_file
    from tests.engine_helpers import write_spec

    parsed: list[str] = []
    parse = automl.datasets.parse_table

    def counting(data: bytes, fmt: str, source: str) -> pd.DataFrame:
        parsed.append(source)
        return parse(data, fmt, source)

    monkeypatch.setattr(automl.datasets, "parse_table", counting)
    spec = write_spec(tmp_path, "titanic.csv", dataset={"target": "survived"}, task="classification")
    arts = ArtifactStore(tmp_path / "art")
    loaded = load_spec_file(spec)  # as `automl run` does, the checked spec is held while its job runs
    job = submit_job(store, arts, loaded)
    ctx = start_job(store, arts, job.id)
    assert len(parsed) == 1 and parsed[0].endswith("titanic.csv")  # the spec's file, once
    assert loaded.table is not None
    reused = load_registered(store.get_dataset(job.dataset_id), arts)
    assert reused is not loaded.table.frame and reused.equals(loaded.table.frame) and len(parsed) == 1
    assert len(ctx.data.y) + len(ctx.data.y_holdout) == len(loaded.table.frame)

    # Once the submitted table is gone, the stored copy is read, and checked against its fingerprint.
    del loaded, reused, ctx
    gc.collect()
    dataset = store.get_dataset(job.dataset_id)
    fresh = load_registered(dataset, arts)
    assert len(parsed) == 2 and parsed[1].startswith(f"dataset {dataset.id}")
    assert fresh.equals(pd.read_csv(DATA / "titanic.csv"))
    stored = arts.path(dataset.stored_uri)
    stored.write_bytes(stored.read_bytes().replace(b"female", b"Female", 1))
    with pytest.raises(ArtifactCorrupt):
        load_registered(dataset, arts)


def test_a_file_changed_between_its_check_and_its_copy_is_refused_and_nothing_is_stored(
    tmp_path: Path, store: Store
) -> None:
    from automl.datasets import register_table

    path = _write(tmp_path, "titanic.csv", TITANIC.read_bytes())
    arts = ArtifactStore(tmp_path / "art")
    checked = load_table(path)
    path.write_bytes(TITANIC.read_bytes().replace(b"female", b"Female", 1))  # rewritten meanwhile
    with pytest.raises(DatasetUnreadable, match="changed after it was read") as raised:
        register_table(store, arts, checked)
    assert "run again" in (raised.value.hint or "")
    assert not arts.exists(stored_key(checked.fingerprint, "csv"))
    assert store.find_dataset(checked.fingerprint) is None

    path.write_bytes(TITANIC.read_bytes())  # the content that was checked: stored, and it reads back
    record, created = register_table(store, arts, checked)
    assert created and load_registered(record, arts).equals(checked.frame)
