"""The registry: aliases, promote and rollback with an audit row per move, racing movers, refused
artifacts, and the CLI over them. Every test runs on SQLite and on PostgreSQL."""

from __future__ import annotations

import itertools
import json
import os
import subprocess
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, text

from automl.artifacts import ArtifactStore
from automl.errors import ArtifactCorrupt, ArtifactMissing, InputError, NotFound
from automl.registry import parse_ref, previous_version_id, promote, resolve, rollback
from automl.store.records import ModelVersionRecord
from automl.store.urls import normalize_url
from tests.store.test_contract import create_job, new_version

REPO = Path(__file__).resolve().parents[1]
AUTOML = str(Path(sys.executable).with_name("automl"))


def make_versions(store: Any, artifacts: ArtifactStore, n: int, name: str = "churn") -> list[ModelVersionRecord]:
    """``n`` versions of a model, each with a real artifact file and checksum."""
    versions = []
    for i in range(n):
        job = create_job(store, model_name=name)
        key = f"models/{name}/{i}.bin"
        sha = artifacts.put_bytes(key, f"model {name} {i}".encode())
        versions.append(store.create_model_version(replace(new_version(job.id, model_name=name),
                                                            artifact_uri=key, artifact_sha256=sha)))  # fmt: skip
    return versions


def test_references_parse_and_resolve(store: Any, artifacts: ArtifactStore) -> None:
    v1, v2 = make_versions(store, artifacts, 2)
    assert parse_ref("churn@staging").alias == "staging" and parse_ref("churn:2").version == 2
    with pytest.raises(InputError, match="not a model reference"):
        parse_ref("churn@a@b")
    assert resolve(store, "churn:1").id == v1.id
    with pytest.raises(NotFound, match="no 'production' alias"):
        resolve(store, "churn")
    assert resolve(store, "churn", latest_if_no_alias=True).id == v2.id
    with pytest.raises(NotFound, match="has no version 7"):
        resolve(store, "churn:7")
    with pytest.raises(NotFound, match="no model named 'nope'"):
        resolve(store, "nope")
    promote(store, artifacts, "churn", v1.id, alias="staging")
    assert resolve(store, "churn@staging").id == v1.id


def test_promote_and_rollback_write_one_event_per_move(store: Any, artifacts: ArtifactStore) -> None:
    v1, v2, v3 = make_versions(store, artifacts, 3)
    first = promote(store, artifacts, "churn", v1.id, by="ana", reason="first release")
    assert first is not None and (first.from_version_id, first.to_version_id, first.actor) == (None, v1.id, "ana")
    promote(store, artifacts, "churn", v2.id, by="ben")
    promote(store, artifacts, "churn", v3.id, by="ben", reason="weekly retrain")
    assert promote(store, artifacts, "churn", v3.id) is None  # already there: no move, no row
    assert previous_version_id(store, "churn") == v2.id

    back = rollback(store, artifacts, "churn", by="ops", reason="v3 drifts")  # default: the previous one
    assert back is not None and (back.from_version_id, back.to_version_id) == (v3.id, v2.id)
    assert back.details == {"action": "rollback"} and back.reason == "v3 drifts"
    assert resolve(store, "churn").id == v2.id
    explicit = rollback(store, artifacts, "churn", to=v1.id, by="ops")
    assert explicit is not None and explicit.to_version_id == v1.id

    events = store.list_alias_events("churn", "production")
    assert [(e.from_version_id, e.to_version_id) for e in events] == [
        (None, v1.id), (v1.id, v2.id), (v2.id, v3.id), (v3.id, v2.id), (v2.id, v1.id),
    ]  # fmt: skip
    assert [e.actor for e in events] == ["ana", "ben", "ben", "ops", "ops"]
    # The audit trail is plain SQL for any client.
    engine = create_engine(normalize_url(store.url))
    with engine.connect() as conn:
        rows = conn.execute(text("SELECT actor, reason FROM alias_events WHERE model_name = 'churn' ORDER BY id")).all()
    engine.dispose()
    assert rows[2] == ("ben", "weekly retrain")


def test_moves_are_refused_with_a_reason(store: Any, artifacts: ArtifactStore) -> None:
    (v1,) = make_versions(store, artifacts, 1)
    (other,) = make_versions(store, artifacts, 1, name="other")
    with pytest.raises(InputError, match="nothing to roll back"):
        rollback(store, artifacts, "churn")
    promote(store, artifacts, "churn", v1.id)
    with pytest.raises(InputError, match="no earlier one"):
        rollback(store, artifacts, "churn")
    with pytest.raises(InputError, match="belongs to model 'other'"):
        promote(store, artifacts, "churn", other.id)
    with pytest.raises(NotFound):
        promote(store, artifacts, "churn", 999_999)
    with pytest.raises(InputError, match="not a valid alias"):
        promote(store, artifacts, "churn", v1.id, alias="bad alias!")
    assert len(store.list_alias_events("churn")) == 1


def test_a_damaged_or_missing_artifact_cannot_be_promoted(store: Any, artifacts: ArtifactStore) -> None:
    v1, v2, v3 = make_versions(store, artifacts, 3)
    promote(store, artifacts, "churn", v1.id)
    path = artifacts.path(v2.artifact_uri)
    path.write_bytes(path.read_bytes() + b"tampered")
    with pytest.raises(ArtifactCorrupt) as corrupt:
        promote(store, artifacts, "churn", v2.id)
    assert f"version id {v2.id}" in str(corrupt.value) and str(path) in str(corrupt.value)
    artifacts.path(v3.artifact_uri).unlink()
    with pytest.raises(ArtifactMissing, match=f"version id {v3.id}") as missing:
        rollback(store, artifacts, "churn", to=v3.id)
    assert str(missing.value).count(missing.value.hint or "?") == 1  # the hint is said once
    # An artifact that is a symbolic link out of the artifact root is refused by name, not read.
    outside = artifacts.root.parent / "outside.joblib"
    outside.write_bytes(artifacts.path(v1.artifact_uri).read_bytes())
    artifacts.path(v3.artifact_uri).symlink_to(outside)
    with pytest.raises(ArtifactCorrupt, match="outside the artifact root"):
        rollback(store, artifacts, "churn", to=v3.id)
    with pytest.raises(InputError, match="at most 1,000"):
        promote(store, artifacts, "churn", v1.id, reason="x" * 5_000_000)
    with pytest.raises(InputError, match="actor name"):
        promote(store, artifacts, "churn", v1.id, by="y" * 1_000)
    assert resolve(store, "churn").id == v1.id
    assert len(store.list_alias_events("churn")) == 1  # nothing refused was recorded


RACER = """
import sys
from automl.artifacts import ArtifactStore
from automl.registry import promote, rollback
from automl.store import open_store
url, root, who, ids = sys.argv[1], sys.argv[2], sys.argv[3], [int(i) for i in sys.argv[4].split(",")]
store, artifacts = open_store(url), ArtifactStore(root)
moved = 0
for n in range(12):
    if n % 3 == 2:
        event = rollback(store, artifacts, "churn", by=who)
    else:
        event = promote(store, artifacts, "churn", ids[(n + int(who[1:])) % len(ids)], by=who)
    moved += event is not None
print(moved)
"""


@pytest.mark.slow
def test_ten_processes_racing_never_lose_an_event(store: Any, artifacts: ArtifactStore) -> None:
    versions = make_versions(store, artifacts, 4)
    promote(store, artifacts, "churn", versions[0].id, by="setup")
    promote(store, artifacts, "churn", versions[1].id, by="setup")  # so a rollback always has a target
    ids = ",".join(str(v.id) for v in versions)
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    racers = [
        subprocess.Popen([sys.executable, "-c", RACER, store.url, str(artifacts.root), f"p{i}", ids],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
        for i in range(10)
    ]  # fmt: skip
    moved = 0
    for racer in racers:
        out, err = racer.communicate(timeout=300)
        assert racer.returncode == 0, err[-2000:]
        moved += int(out.strip())
    events = store.list_alias_events("churn", "production")
    assert len(events) == 2 + moved  # every move that said it moved is on record, once
    assert moved >= 10
    for before, after in itertools.pairwise(events):
        assert after.from_version_id == before.to_version_id  # a chain: no move saw a stale pointer
        assert after.from_version_id != after.to_version_id
    pointer = store.get_alias("churn", "production")
    assert pointer is not None and pointer.version_id == events[-1].to_version_id


def _cli(url: str, root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "AUTOML_DATABASE_URL": url, "AUTOML_ARTIFACT_ROOT": str(root), "USER": "cli-user"}
    return subprocess.run([AUTOML, *args], capture_output=True, text=True, env=env, timeout=120)


@pytest.mark.slow
def test_cli_promote_rollback_history_and_versions(store: Any, artifacts: ArtifactStore) -> None:
    v1, v2 = make_versions(store, artifacts, 2)
    url, root = store.url, artifacts.root
    out = _cli(url, root, "promote", "churn", str(v1.id), "--reason", "go live")
    assert out.returncode == 0, out.stderr
    assert _cli(url, root, "promote", "churn", str(v2.id), "--by", "robot").returncode == 0
    out = _cli(url, root, "rollback", "churn", "--reason", "bad week")
    assert out.returncode == 0 and f"version id {v2.id} → version id {v1.id}" in out.stdout, out.stdout
    trail = json.loads(_cli(url, root, "history", "churn", "--format", "json").stdout)
    assert [(e["by"], e["action"], e["to_version_id"]) for e in trail] == [
        ("cli-user", "promote", v1.id), ("robot", "promote", v2.id), ("cli-user", "rollback", v1.id),
    ]  # fmt: skip
    assert trail[2]["reason"] == "bad week"
    rows = json.loads(_cli(url, root, "models", "versions", "churn", "--format", "json").stdout)
    assert [(r["version_id"], r["aliases"]) for r in rows] == [(v2.id, []), (v1.id, ["production"])]
    listed = json.loads(_cli(url, root, "models", "list", "--format", "json").stdout)
    assert listed[0]["aliases"]["production"]["version_id"] == v1.id
    refused = _cli(url, root, "rollback", "churn", "--to", "999999")
    assert refused.returncode == 2 and "999999" in refused.stderr
