"""The model registry: immutable versions, aliases that point at them, and every move on record.

A model is a name; each successful job registers the next version of it (``titanic`` v1, v2, ...),
each with a global version id. Aliases (``production``, ``staging``, any name) point at one version
id. :func:`promote` and :func:`rollback` move an alias; the store writes the move and its
``alias_events`` row (who, when, from, to, why) in one serialized transaction, so the audit trail
is complete even when many processes race. A version whose artifact is missing or fails its
checksum is never pointed at.

References accepted everywhere a model is named: ``NAME`` (its ``production`` version),
``NAME@ALIAS`` and ``NAME:VERSION`` (the version number, not the id).
"""

from __future__ import annotations

import getpass
import os
import re
from dataclasses import dataclass
from typing import Any

from automl.artifacts import ArtifactStore
from automl.errors import InputError, NotFound
from automl.store.base import Store
from automl.store.records import AliasEventRecord, ModelVersionRecord

PRODUCTION = "production"
ALIAS_PATTERN = re.compile(r"^[A-Za-z][A-Za-z0-9_.-]{0,63}$")
_REF = re.compile(r"^(?P<name>[^@:\s]+)(?:@(?P<alias>[^@:\s]+)|:(?P<version>\d+))?$")


@dataclass(frozen=True)
class ModelRef:
    """A parsed model reference: a name with an alias or a version number (or neither)."""

    name: str
    alias: str | None = None
    version: int | None = None

    def __str__(self) -> str:
        if self.version is not None:
            return f"{self.name}:{self.version}"
        return f"{self.name}@{self.alias}" if self.alias else self.name


def parse_ref(text: str) -> ModelRef:
    """``NAME``, ``NAME@ALIAS`` or ``NAME:VERSION``; anything else is an InputError."""
    match = _REF.match(text.strip())
    if match is None:
        raise InputError(
            f"'{text}' is not a model reference",
            hint="write NAME, NAME@ALIAS (e.g. titanic@production) or NAME:VERSION (e.g. titanic:3)",
        )
    version = match["version"]
    return ModelRef(match["name"], match["alias"], int(version) if version else None)


def check_alias(alias: str) -> str:
    if not ALIAS_PATTERN.match(alias):
        raise InputError(
            f"'{alias}' is not a valid alias",
            hint="an alias starts with a letter and has up to 64 letters, digits, '.', '_' or '-'",
        )
    return alias


MAX_REASON = 1_000  # characters of a promote or rollback reason
MAX_ACTOR = 200  # characters of who moved an alias


def actor(by: str | None = None) -> str:
    """Who is moving an alias: ``by`` if given, else the login name."""
    if by:
        return by
    try:
        return os.environ.get("USER") or getpass.getuser()
    except Exception:  # no login name in some containers
        return "unknown"


def _versions(store: Store, name: str) -> list[ModelVersionRecord]:
    versions = store.list_model_versions(name)
    if not versions:
        known = sorted({v.model_name for v in store.list_model_versions()})
        raise NotFound(
            f"there is no model named '{name}'",
            hint=f"known models: {', '.join(known)}" if known else "run a job first: `automl run SPEC`",
        )
    return versions


def resolve(store: Store, ref: str | ModelRef, *, latest_if_no_alias: bool = False) -> ModelVersionRecord:
    """The version a reference names. A bare ``NAME`` means ``NAME@production``; with
    ``latest_if_no_alias`` it falls back to the newest version when nothing is in production."""
    ref = parse_ref(ref) if isinstance(ref, str) else ref
    versions = _versions(store, ref.name)
    if ref.version is not None:
        for v in versions:
            if v.version == ref.version:
                return v
        raise NotFound(
            f"model '{ref.name}' has no version {ref.version} (it has versions 1 to {versions[-1].version})",
            hint=f"see them with `automl models versions {ref.name}`",
        )
    alias = ref.alias or PRODUCTION
    pointer = store.get_alias(ref.name, alias)
    if pointer is None:
        if ref.alias is None and latest_if_no_alias:
            return versions[-1]
        raise NotFound(
            f"model '{ref.name}' has no '{alias}' alias yet",
            hint=f"promote a version: `automl promote {ref.name} VERSION_ID --alias {alias}`, "
            f"or name one: {ref.name}:{versions[-1].version}",
        )
    return store.get_model_version(pointer.version_id)


def verify_artifact(artifacts: ArtifactStore, version: ModelVersionRecord) -> None:
    """Raise ArtifactMissing/ArtifactCorrupt naming the version and the path unless the version's
    artifact is there and matches its checksum."""
    from automl.errors import ArtifactCorrupt, ArtifactMissing

    label = f"{version.model_name} v{version.version} (version id {version.id})"
    try:
        artifacts.get_bytes(version.artifact_uri, version.artifact_sha256)
    except ArtifactMissing as exc:
        raise ArtifactMissing(f"{label}: {exc.message}", hint=exc.hint) from None
    except ArtifactCorrupt as exc:
        raise ArtifactCorrupt(f"{label}: {exc.message}", hint=exc.hint) from None


def promote(
    store: Store,
    artifacts: ArtifactStore,
    name: str,
    version_id: int,
    *,
    alias: str = PRODUCTION,
    by: str | None = None,
    reason: str | None = None,
    details: dict[str, Any] | None = None,
) -> AliasEventRecord | None:
    """Point ``name@alias`` at ``version_id`` after checking its artifact. Returns the recorded
    event, or None if the alias already pointed there."""
    check_alias(alias)
    if reason is not None and len(reason) > MAX_REASON:
        raise InputError(
            f"the reason is {len(reason):,} characters; at most {MAX_REASON:,} are kept",
            hint="say why in a sentence; link to a longer text",
        )
    if by is not None and len(by) > MAX_ACTOR:
        raise InputError(f"the actor name is {len(by):,} characters; at most {MAX_ACTOR}", hint="give a user name")
    _versions(store, name)
    version = store.get_model_version(version_id)
    if version.model_name != name:
        raise InputError(
            f"version id {version_id} belongs to model '{version.model_name}', not '{name}'",
            hint=f"see the versions with `automl models versions {name}`",
        )
    verify_artifact(artifacts, version)
    return store.move_alias(name, alias, version_id, actor=actor(by), reason=reason, details=details)


def previous_version_id(store: Store, name: str, alias: str = PRODUCTION) -> int:
    """The version ``name@alias`` pointed to before its last move."""
    pointer = store.get_alias(name, alias)
    if pointer is None:
        _versions(store, name)
        raise InputError(
            f"{name}@{alias} points at no version, so there is nothing to roll back",
            hint=f"name the version: `automl rollback {name} --to VERSION_ID`",
        )
    for event in reversed(store.list_alias_events(name, alias)):
        if event.to_version_id == pointer.version_id and event.from_version_id is not None:
            return event.from_version_id
    raise InputError(
        f"{name}@{alias} has only ever pointed at version id {pointer.version_id}, so there is no earlier one",
        hint=f"see the versions with `automl models versions {name}`",
    )


def rollback(
    store: Store,
    artifacts: ArtifactStore,
    name: str,
    *,
    to: int | None = None,
    alias: str = PRODUCTION,
    by: str | None = None,
    reason: str | None = None,
) -> AliasEventRecord | None:
    """Put ``name@alias`` back on version id ``to``, or (default) on the version it pointed to
    before its last move. Recorded like any move, with ``details.action = "rollback"``."""
    target = to if to is not None else previous_version_id(store, name, alias)
    return promote(store, artifacts, name, target, alias=alias, by=by, reason=reason, details={"action": "rollback"})


def history(store: Store, name: str, alias: str | None = None) -> list[AliasEventRecord]:
    """Every move of the model's aliases, oldest first."""
    _versions(store, name)
    return store.list_alias_events(name, alias)


def aliases_by_version(store: Store, name: str | None = None) -> dict[int, list[str]]:
    out: dict[int, list[str]] = {}
    for a in store.list_aliases(name):
        out.setdefault(a.version_id, []).append(a.alias)
    return out


def list_models(store: Store) -> list[dict[str, Any]]:
    """One row per model name: its versions, newest version and aliases."""
    by_name: dict[str, list[ModelVersionRecord]] = {}
    for v in store.list_model_versions():
        by_name.setdefault(v.model_name, []).append(v)
    rows = []
    for name, versions in sorted(by_name.items()):
        ids = {v.id: v.version for v in versions}
        latest = versions[-1]
        rows.append(
            {
                "model": name,
                "versions": len(versions),
                "latest_version": latest.version,
                "latest_version_id": latest.id,
                "latest_created_at": latest.created_at.isoformat(),
                "task": latest.task,
                "metric": latest.metric,
                "aliases": {a.alias: {"version": ids.get(a.version_id), "version_id": a.version_id}
                            for a in store.list_aliases(name)},
            }
        )  # fmt: skip
    return rows


def version_rows(store: Store, name: str) -> list[dict[str, Any]]:
    """One row per version of a model, newest first, with the aliases pointing at it."""
    pointing = aliases_by_version(store, name)
    return [
        {
            "version_id": v.id,
            "version": v.version,
            "job_id": v.job_id,
            "created_at": v.created_at.isoformat(),
            "metric": v.metric,
            "cv_score": v.cv_score,
            "holdout_score": v.holdout_score,
            "aliases": sorted(pointing.get(v.id, [])),
        }
        for v in reversed(_versions(store, name))
    ]


def model_card(store: Store, version: ModelVersionRecord) -> dict[str, Any]:
    """What a version is and where it came from: spec, dataset, metrics, members, lineage."""
    job = store.get_job(version.job_id)
    dataset = store.get_dataset(job.dataset_id)
    summary = job.summary or {}
    metrics = {m.name: m.value for m in store.list_metrics(model_version_id=version.id)}
    runs = store.list_runs(job.id)
    profile = dataset.profile or {}
    members = (summary.get("ensemble") or {}).get("members") if summary.get("final") == "ensemble" else []
    return {
        "model": version.model_name,
        "version": version.version,
        "version_id": version.id,
        "created_at": version.created_at.isoformat(),
        "aliases": sorted(aliases_by_version(store, version.model_name).get(version.id, [])),
        "task": version.task,
        "metric": version.metric,
        "cv_score": version.cv_score,
        "holdout_score": version.holdout_score,
        "holdout_metrics": metrics,
        "final_model": summary.get("final"),
        "final_reason": summary.get("final_reason"),
        "trained_on": summary.get("trained_on"),
        "best_trial": summary.get("best"),
        "ensemble_members": members,
        "artifact": {"uri": version.artifact_uri, "sha256": version.artifact_sha256},
        "input_schema": version.input_schema,
        "dataset": {
            "id": dataset.id,
            "name": dataset.name,
            "fingerprint": dataset.fingerprint,
            "rows": dataset.n_rows,
            "columns": dataset.n_columns,
            # The job's own (its target's rare classes, rows without a target), else the dataset's.
            "warnings": (job.profile or {}).get("warnings", profile.get("warnings", [])),
        },
        "lineage": {
            "job_id": job.id,
            "job_name": job.name,
            "submitted_by": job.submitted_by,
            "spec_hash": job.spec_hash,
            "run_id": version.run_id,
            "trial_runs": sum(1 for r in runs if r.kind == "trial"),
            "trials_succeeded": sum(1 for r in runs if r.kind == "trial" and r.status == "succeeded"),
        },
        "promotion": summary.get("promotion"),
        "spec": job.spec,
    }
