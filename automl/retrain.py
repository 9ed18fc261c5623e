"""Retraining a registered model on new rows: a new job from the spec of the version in use.

The spec is the version's own (task, metric, candidates, budget, promotion policy), pointed at
the new data file; the model name stays the version's. The new job warm-starts from the old one
(:mod:`automl.warmstart`) and its version is promoted, or not, by the spec's policy through the
same gate as any job (:mod:`automl.promotion`).
"""

from __future__ import annotations

import copy
from pathlib import Path

from automl.spec import LoadedSpec, parse_spec
from automl.store.base import Store
from automl.store.records import ModelVersionRecord


def retrain_spec(
    store: Store, version: ModelVersionRecord, data: Path, *, time_s: float | None = None, trials: int | None = None
) -> LoadedSpec:
    """The spec of ``version``'s job on the rows of ``data`` (checked like any spec: the file must
    exist and hold the target), with budget overrides."""
    job = store.get_job(version.job_id)
    raw = copy.deepcopy(job.spec)
    dataset = {k: v for k, v in raw["dataset"].items() if k not in ("id", "path", "format")}
    dataset["path"] = str(Path(data).expanduser().resolve())
    raw["dataset"] = dataset
    raw["register"] = {**(raw.get("register") or {}), "model_name": version.model_name}
    source = f"the spec of {version.model_name} v{version.version} (job {job.id}) on {data}"
    return parse_spec(raw, source=source, base_dir=Path.cwd()).with_overrides(time_s=time_s, trials=trials)
