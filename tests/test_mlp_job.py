"""The network tuned inside a real job: pruned between epochs or folds, learning curves on record.

The job runs in a fresh interpreter: this test process may already hold TensorFlow (from the
estimator tests), and trials fork from the process that runs the job.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from automl.store import open_store
from tests.engine_helpers import write_spec

pytestmark = pytest.mark.slow  # whole jobs, worker or server processes: left out by `make test-fast`

SCRIPT = """
import sys
from automl import training
training.CHECK_MIN_REMAINING_S = 0.0  # ask after every fold too, so short trials can be pruned
from automl.artifacts import ArtifactStore
from automl.store import open_store
from tests.engine_helpers import run_spec
url, art, spec = sys.argv[1:]
job = run_spec(open_store(url), ArtifactStore(art), url, __import__("pathlib").Path(spec))
print("JOB", job.id, job.status)
"""


def test_mlp_is_tuned_pruned_and_leaves_learning_curves(tmp_path: Path) -> None:
    spec = write_spec(
        tmp_path,
        "penguins.csv",
        dataset={"target": "species"},
        task="classification",
        budget={"time_s": None, "trials": 12},
        candidates={"include": ["linear", "mlp"]},
        cv={"folds": 3},
        ensemble={"enabled": False},
    )
    url = f"sqlite:///{tmp_path / 'mlp.db'}"
    repo = Path(__file__).resolve().parents[1]
    out = subprocess.run(
        [sys.executable, "-c", SCRIPT, url, str(tmp_path / "art"), str(spec)],
        cwd=repo, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr[-3000:]
    job_id = int(out.stdout.split("JOB ")[1].split()[0])
    store = open_store(url)
    job = store.get_job(job_id)
    assert job.status == "succeeded", (job.error_code, job.error_message)
    nets = [r for r in store.list_runs(job_id) if r.kind == "trial" and r.family == "mlp"]
    assert len(nets) >= 3, [r.family for r in store.list_runs(job_id)]
    assert any(r.status == "succeeded" for r in nets)
    assert any(r.status == "pruned" for r in nets), [r.status for r in nets]
    finished = [r for r in nets if r.status == "succeeded"]
    for run in finished:
        curves = [m for m in store.list_metrics(run_id=run.id) if m.step is not None]
        assert {m.name for m in curves} == {"loss", "val_loss"}
        epochs = sorted({m.step for m in curves if m.name == "val_loss"})
        assert epochs[0] == 1 and epochs == list(range(1, len(epochs) + 1))
