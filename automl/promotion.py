"""Champion and challenger: the spec's ``register.promote`` policy applied to a new version.

An honest gate compares the two models on rows neither trained on. Every job's holdout is drawn
by a stable hash of each row (:func:`automl.validation.row_keys`): a row whose key is below a
job's holdout fraction is held out by that job, whatever its seed and whatever other rows its data
has. So the rows of the new job's holdout whose key is also below the champion's fraction were
never trained on by the champion's *evaluation* fit (the fit that produced its holdout score;
its registered artifact may have been refit on every row). Both models are scored on exactly
those rows. When no such rows exist (the champion's job drew a seeded holdout, or hashed another
id column), the gate says so and keeps the champion: a challenger is promoted only on evidence.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from automl.artifacts import ArtifactStore
from automl.store.base import Store
from automl.store.records import ModelVersionRecord


def apply_promotion(store: Store, artifacts: ArtifactStore, ctx: Any, version: ModelVersionRecord) -> dict[str, Any]:
    """The spec's ``register.promote`` policy for the new version: ``never``; ``always``; or
    ``if_better``: champion/challenger on rows neither model trained on (see
    :func:`clean_rows`), where the new version is promoted only if its score there is better.
    The decision, both scores and the rows compared go in the job summary (``promotion``) and,
    when the alias moves, in the ``alias_events`` row."""
    from automl.registry import PRODUCTION, promote

    job, policy = store.get_job(ctx.job.id), ctx.spec.register_.promote
    record: dict[str, Any] = {
        "policy": policy,
        "alias": PRODUCTION,
        "metric": job.metric,
        "challenger": {"version_id": version.id, "version": version.version, "holdout_score": version.holdout_score},
        "champion": None,
        "promoted": False,
    }
    current = store.get_alias(version.model_name, PRODUCTION)
    if policy == "never":
        record["decision"] = "not promoted: register.promote is never"
    elif current is not None and current.version_id == version.id:
        record["decision"] = "already in production"
    elif policy == "always" or current is None:
        record["promoted"] = True
        record["decision"] = (
            "promoted: register.promote is always"
            if policy == "always"
            else ("promoted: nothing was in production yet")
        )
    else:
        _champion_challenger(store, artifacts, ctx, version, current.version_id, record)
    if record["promoted"]:
        details = {k: record[k] for k in ("policy", "metric", "challenger", "champion")} | {"job_id": job.id}
        event = promote(
            store, artifacts, version.model_name, version.id, by=job.submitted_by,
            reason=f"job {job.id}: register.promote={policy}", details=details,
        )  # fmt: skip
        record["event_id"] = event.id if event is not None else None
    store.merge_job_summary(job.id, {"promotion": record})
    return record


MIN_CLEAN_ROWS = 10


def clean_rows(champion_job: Any, data: Any, id_column: str | None) -> tuple[np.ndarray | None, str]:
    """A mask over this job's holdout rows that the champion's evaluation fit never trained on,
    and why they are clean (or ``None`` and why there are none)."""
    split = (champion_job.summary or {}).get("holdout_split") or {}
    champion_id_column = ((champion_job.spec or {}).get("dataset") or {}).get("id_column")
    if data.split.rule != "row-hash" or data.holdout_keys is None:
        return None, "this job's holdout is a seeded split, not drawn by row hash"
    if split.get("rule") != "row-hash":
        return None, f"job {champion_job.id}'s holdout was not drawn by row hash"
    if champion_id_column != id_column:
        theirs, ours = champion_id_column or "their values", id_column or "their values"
        return None, f"job {champion_job.id} hashed rows by {theirs}, this job by {ours}"
    fraction = float(split["fraction"])
    mask = np.asarray(data.holdout_keys < fraction)
    if int(mask.sum()) < MIN_CLEAN_ROWS:
        return None, f"only {int(mask.sum())} holdout rows are clean for both (fewer than {MIN_CLEAN_ROWS})"
    return mask, (
        f"{int(mask.sum())} of this job's {len(mask)} holdout rows: their row hash puts them in the holdout of "
        f"job {champion_job.id} too (fraction {fraction:g}), so neither model trained on them"
    )


def _champion_challenger(
    store: Store, artifacts: ArtifactStore, ctx: Any, version: ModelVersionRecord, champion_id: int,
    record: dict[str, Any],
) -> None:  # fmt: skip
    from automl.metrics import is_better
    from automl.training import score_saved_models

    job, metric = store.get_job(ctx.job.id), ctx.data.metric
    champion = store.get_model_version(champion_id)
    record["champion"] = {"version_id": champion.id, "version": champion.version, "holdout_score": None}
    mask, why = clean_rows(store.get_job(champion.job_id), ctx.data, ctx.spec.dataset.id_column)
    record["compared"] = {"rows": 0 if mask is None else int(mask.sum()), "why": why}
    if mask is None:
        record["decision"] = f"kept v{champion.version}: no clean comparison is possible ({why})"
        return

    def evaluation(v: ModelVersionRecord) -> tuple[str, str]:
        return (
            (v.evaluation_uri, v.evaluation_sha256 or "") if v.evaluation_uri else (v.artifact_uri, v.artifact_sha256)
        )

    try:
        scores = score_saved_models(str(artifacts.root), [evaluation(champion), evaluation(version)], ctx.data, mask)
    except Exception as exc:  # a model that cannot be loaded or scored: the champion stays
        record["decision"] = f"kept v{champion.version}: it could not be scored on this job's holdout ({exc})"
        return
    score, challenger = float(scores[0]), float(scores[1])
    record["champion"]["holdout_score"] = score
    record["challenger"]["holdout_score"] = challenger
    record["challenger"]["full_holdout_score"] = version.holdout_score
    rows = int(mask.sum())
    if is_better(metric, challenger, score):
        record["promoted"] = True
        record["decision"] = (
            f"promoted: {job.metric} {challenger:.6g} beats v{champion.version}'s {score:.6g} on {rows} clean rows"
        )
    else:
        record["decision"] = (
            f"kept v{champion.version}: its {job.metric} {score:.6g} on {rows} clean rows is not beaten by "
            f"{challenger:.6g}"
        )
