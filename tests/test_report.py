"""`automl report` on real small jobs: every section is there with its content, user text is escaped,
a failed job still gets a report, and headless Chromium renders the file without a console message.

The jobs run as `automl` subprocesses (as a user runs them) before any report is built in this
process: model code forks, and this process must not fork after it has predicted in-process.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from tests.conftest import DATA
from tests.engine_helpers import automl_in

pytestmark = pytest.mark.slow  # whole jobs, worker or server processes: left out by `make test-fast`

FAST = ["linear", "random_forest", "hist_gradient_boosting"]
HOSTILE = '<script>alert("x")</script> $x$ & co'  # a column name: HTML, mathtext and an ampersand
SECTIONS = (
    "spec",
    "profile",
    "selection",
    "leaderboard",
    "history",
    "param-importances",
    "families",
    "ensemble",
    "holdout",
    "diagnostics",
    "permutation-importance",
    "learning-curves",
)


# -- a small DOM over the stdlib parser -----------------------------------------------------------

VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "track", "wbr"}


@dataclass
class Node:
    tag: str
    attrs: dict[str, str]
    children: list[Any] = field(default_factory=list)  # Node or str

    def text(self) -> str:
        return "".join(c if isinstance(c, str) else c.text() for c in self.children)

    def iter(self) -> Iterator[Node]:
        for child in self.children:
            if isinstance(child, Node):
                yield child
                yield from child.iter()

    def find_all(self, tag: str, **attrs: str) -> list[Node]:
        return [n for n in self.iter() if n.tag == tag and all(n.attrs.get(k) == v for k, v in attrs.items())]

    def by_id(self, id_: str) -> Node:
        found = [n for n in self.iter() if n.attrs.get("id") == id_]
        assert len(found) == 1, f"{len(found)} elements with id {id_!r}"
        return found[0]


class _Builder(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.root = Node("#document", {})
        self.stack = [self.root]

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        node = Node(tag, {k: v or "" for k, v in attrs})
        self.stack[-1].children.append(node)
        if tag not in VOID:
            self.stack.append(node)

    def handle_endtag(self, tag: str) -> None:
        if tag in VOID:
            return
        assert self.stack[-1].tag == tag, f"</{tag}> closes <{self.stack[-1].tag}>"
        self.stack.pop()

    def handle_data(self, data: str) -> None:
        self.stack[-1].children.append(data)


def parse(html: str) -> Node:
    builder = _Builder()
    builder.feed(html)
    builder.close()
    assert builder.stack == [builder.root], "unclosed elements: " + ", ".join(n.tag for n in builder.stack[1:])
    return builder.root


def check_images(section: Node, ids: list[str]) -> None:
    """Each figure id holds an embedded PNG (decodable bytes with the PNG signature)."""
    for id_ in ids:
        (img,) = section.by_id(id_).find_all("img")
        prefix = "data:image/png;base64,"
        assert img.attrs["src"].startswith(prefix) and img.attrs["alt"]
        assert base64.b64decode(img.attrs["src"][len(prefix) :]).startswith(b"\x89PNG\r\n\x1a\n")


# -- the jobs -------------------------------------------------------------------------------------


def _spec(folder: Path, frame: pd.DataFrame, **fields: Any) -> Path:
    folder.mkdir()
    frame.to_csv(folder / "data.csv", index=False)
    spec = {"spec_version": 1, "name": "report-test", "seed": 0, "n_jobs": 1, **fields}
    spec["dataset"] = {"path": "data.csv", **fields["dataset"]}
    (folder / "spec.json").write_text(json.dumps(spec))
    return folder / "spec.json"


@dataclass(frozen=True)
class Jobs:
    home: Path
    runs: dict[str, subprocess.CompletedProcess[str]]

    def store(self) -> Any:
        from automl.store import open_store

        return open_store(f"sqlite:///{self.home / 'store.db'}")

    def html(self, name: str) -> str:
        return (self.home / f"{name}.html").read_text(encoding="utf-8")


@pytest.fixture(scope="module")
def jobs(tmp_path_factory: pytest.TempPathFactory) -> Jobs:
    """Job 1: binary (titanic, its leak left in so the profile warns); job 2: regression (diabetes with
    a noise column named like an attack); job 3: every trial times out, so the job fails."""
    home = tmp_path_factory.mktemp("report")
    budget = {"time_s": 60, "trials": 6}
    common = {"budget": budget, "candidates": {"include": FAST}, "cv": {"folds": 3}}
    titanic = pd.read_csv(DATA / "titanic.csv")
    diabetes = pd.read_csv(DATA / "diabetes.csv")
    diabetes.insert(2, HOSTILE, (diabetes.index * 7919 % 101) / 101.0)
    binary = _spec(home / "binary", titanic, dataset={"target": "survived"}, task="classification", **common)
    regression = _spec(home / "regression", diabetes, dataset={"target": "target"}, task="regression", **common)
    failing = _spec(
        home / "failing",
        titanic,
        dataset={"target": "survived", "drop": ["alive"]},
        task="classification",
        budget={"time_s": 30, "trials": 3, "trial_time_s": 0.01},
        candidates={"include": ["random_forest"]},
    )
    runs = {
        "binary": automl_in(home, "run", str(binary), "-q", "--report", "binary.html"),
        "regression": automl_in(home, "run", str(regression), "-q"),
        "failing": automl_in(home, "run", str(failing), "-q", "--report", str(home / "failing.html")),
    }
    runs["report"] = automl_in(home, "report", "2", "--output", "regression.html")
    return Jobs(home, runs)


# -- succeeded jobs -------------------------------------------------------------------------------


def _common_checks(jobs: Jobs, job_id: int, html: str) -> Node:
    from automl.report import fmt

    store = jobs.store()
    job = store.get_job(job_id)
    assert job.status == "succeeded"
    doc = parse(html)
    for id_ in SECTIONS:
        assert doc.by_id(id_).tag == "section"
    assert not [img for img in doc.find_all("img") if not img.attrs["src"].startswith("data:")]
    assert "http://" not in html and "https://" not in html  # nothing external, not even a link

    assert str(job.spec["budget"]["trials"]) in doc.by_id("spec").text()
    selection = doc.by_id("selection").find_all("tr", **{"class": "selected"})
    assert sorted(tr.find_all("td")[0].text() for tr in selection) == sorted(FAST)

    trials = [r for r in store.list_runs(job_id) if r.kind == "trial"]
    rows = doc.by_id("leaderboard").find_all("tr", **{"data-kind": "trial"})
    assert len(rows) == len(trials) == 6
    assert {int(tr.attrs["data-run"]) for tr in rows} == {r.id for r in trials}

    check_images(doc.by_id("history"), ["history-plot"])
    importances = doc.by_id("param-importances")
    check_images(importances, ["param-importances-plot"])
    names = [tr.find_all("td")[0].text() for tr in importances.find_all("tr") if tr.find_all("td")]
    assert "family" in names
    check_images(doc.by_id("families"), ["families-plot"])
    assert len(doc.by_id("families").find_all("tbody")[0].find_all("tr")) == len(FAST)

    summary = job.summary or {}
    ensemble = doc.by_id("ensemble")
    assert ("ensemble" if summary["final"] == "ensemble" else "single") in ensemble.text()
    for member in (summary.get("ensemble") or {}).get("members") or []:
        assert fmt(member["weight"], 3) in ensemble.text()

    version = store.version_for_job(job_id)
    metrics = store.list_metrics(model_version_id=version.id)
    holdout = doc.by_id("holdout")
    assert metrics and job.metric in {m.name for m in metrics}
    for m in metrics:
        (row,) = holdout.find_all("tr", **{"data-metric": m.name})
        cell = row.find_all("td")[1]
        assert float(cell.attrs["data-value"]) == m.value and cell.text() == fmt(m.value)
    assert f"{job.metric} {fmt(summary['holdout_score'])}" in holdout.text()  # recomputed from the model

    permutation = doc.by_id("permutation-importance")
    check_images(permutation, ["permutation-plot"])
    profile = job.profile or {}
    features = {c["name"] for c in profile["columns"]} - {job.spec["dataset"]["target"], *profile["dropped"]}
    permuted = {tr.find_all("td")[0].text() for tr in permutation.find_all("tbody")[0].find_all("tr")}
    assert permuted and permuted <= features
    assert "no MLP trials" in doc.by_id("learning-curves").text()
    return doc


def test_classification_report_has_every_section(jobs: Jobs) -> None:
    run = jobs.runs["binary"]
    assert run.returncode == 0, run.stdout + run.stderr
    assert f"written to {jobs.home / 'binary.html'}" in run.stdout
    doc = _common_checks(jobs, 1, jobs.html("binary"))

    warnings = [li.text() for li in doc.by_id("profile").find_all("li", **{"class": "warning"})]
    assert any("alive" in w and "leak" in w for w in warnings) and any("deck" in w for w in warnings)

    diagnostics = doc.by_id("diagnostics")
    check_images(diagnostics, ["confusion-matrix", "roc-curve", "pr-curve"])
    table = diagnostics.find_all("table", **{"class": "confusion"})[0]
    matrix = [[int(td.text()) for td in tr.find_all("td")] for tr in table.find_all("tbody")[0].find_all("tr")]
    assert matrix == (jobs.store().get_job(1).summary or {})["holdout"]["confusion_matrix"]

    rows = doc.by_id("permutation-importance").find_all("tbody")[0].find_all("tr")
    shown = {tr.find_all("td")[0].text() for tr in rows}
    assert "sex" in shown and "alive" not in shown  # the leak was dropped, so it is not a feature


def test_regression_report_has_every_section_and_escapes_user_text(jobs: Jobs) -> None:
    for name in ("regression", "report"):
        assert jobs.runs[name].returncode == 0, jobs.runs[name].stdout + jobs.runs[name].stderr
    assert "regression.html" in jobs.runs["report"].stdout
    html = jobs.html("regression")
    doc = _common_checks(jobs, 2, html)
    check_images(doc.by_id("diagnostics"), ["residuals", "predicted-vs-actual"])

    assert "<script" not in html and "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt; $x$ &amp; co" in html
    columns = [tr.find_all("td")[0].text() for tr in doc.by_id("profile").find_all("tr") if tr.find_all("td")]
    assert HOSTILE in columns
    permuted = [tr.find_all("td")[0].text() for tr in doc.by_id("permutation-importance").find_all("tr")[1:]]
    assert HOSTILE in permuted and "bmi" in permuted


# -- what does not exist --------------------------------------------------------------------------


def test_a_failed_job_gets_a_report_of_what_exists(jobs: Jobs) -> None:
    run = jobs.runs["failing"]
    assert run.returncode == 1, run.stdout + run.stderr
    assert "failing.html" in run.stdout
    job = jobs.store().get_job(3)
    assert job.status == "failed" and job.error_code == "NO_SUCCESSFUL_TRIAL"
    doc = parse(jobs.html("failing"))
    for id_ in SECTIONS:
        assert doc.by_id(id_).tag == "section"
    assert "NO_SUCCESSFUL_TRIAL" in doc.by_id("job-error").text()
    rows = doc.by_id("leaderboard").find_all("tr", **{"data-kind": "trial"})
    assert len(rows) == 3 and all("timeout" in tr.text() for tr in rows)
    assert "random_forest" in doc.by_id("selection").text()
    assert "not enough completed trials" in doc.by_id("param-importances").text()
    for id_ in ("history", "ensemble", "holdout", "diagnostics", "permutation-importance"):
        text = doc.by_id(id_).text()
        assert doc.by_id(id_).find_all("p", **{"class": "empty"}), id_
        assert "failed" in text or "no trial finished" in text, (id_, text)
    assert "the job failed (NO_SUCCESSFUL_TRIAL" in doc.by_id("holdout").text()
    assert not doc.find_all("img")


def test_a_missing_job_is_not_found(jobs: Jobs) -> None:
    from automl.artifacts import ArtifactStore
    from automl.errors import NotFound
    from automl.report import build_report

    with pytest.raises(NotFound, match="job 99 does not exist"):
        build_report(jobs.store(), ArtifactStore(jobs.home / "artifacts"), 99, f"sqlite:///{jobs.home / 'store.db'}")
    result = automl_in(jobs.home, "report", "99")
    assert result.returncode == 2 and "job 99 does not exist" in result.stderr
    assert not (jobs.home / "report-job-99.html").exists()


def test_report_options_are_checked_before_any_work(jobs: Jobs) -> None:
    result = automl_in(jobs.home, "submit", str(jobs.home / "binary" / "spec.json"), "--report", "x.html")
    assert result.returncode == 2 and "--report needs --wait" in result.stderr
    result = automl_in(jobs.home, "run", str(jobs.home / "binary" / "spec.json"), "--report", "no/such/dir/r.html")
    assert result.returncode == 2 and "does not exist" in result.stderr
    assert len(jobs.store().list_jobs()) == 3  # neither command queued a job


def test_mlp_trials_get_learning_curves(tmp_path: Path) -> None:
    """MLP runs record per-epoch metrics with a ``step``; the report draws them (no model needed)."""
    from automl.artifacts import ArtifactStore
    from automl.pipeline import submit_job
    from automl.report import build_report
    from automl.spec import load_spec_file
    from automl.store import open_store
    from automl.store.records import NewMetric, RunResult

    url = f"sqlite:///{tmp_path / 'store.db'}"
    store, artifacts = open_store(url, auto_upgrade=True), ArtifactStore(tmp_path / "artifacts")
    penguins = pd.read_csv(DATA / "penguins.csv")
    spec = _spec(tmp_path / "mlp", penguins, dataset={"target": "species"}, task="classification")
    job = submit_job(store, artifacts, load_spec_file(spec))
    for number in range(2):
        run = store.start_run(job.id, "trial", "mlp", {"hidden": 16 * (number + 1)}, trial_number=number)
        store.add_metrics(
            [
                NewMetric(name="loss", value=1.0 / (e + 1 + number), split=split, run_id=run.id, step=e)
                for e in range(5)
                for split in ("train", "validation")
            ]
        )
        store.finish_run(run.id, RunResult(status="succeeded", cv_score=0.5 - 0.1 * number, fit_seconds=1.0))
    doc = parse(build_report(store, artifacts, job.id, url))
    curves = doc.by_id("learning-curves")
    check_images(curves, ["learning-curves-plot"])
    rows = curves.find_all("tbody")[0].find_all("tr")
    assert [tr.find_all("td")[3].text() for tr in rows] == ["5", "5"]
    assert "loss (validation)" in curves.text()
    assert "queued" in doc.by_id("holdout").text()  # the job never ran: no model
    assert "never started" in doc.by_id("profile").text()  # the dataset's profile stands in


def test_help_lists_report_without_loading_plotting_libraries() -> None:
    code = (
        "import sys; sys.argv = ['automl', '--help']\n"
        "from automl.cli import main\n"
        "try:\n    main()\nexcept SystemExit:\n    pass\n"
        "print('HEAVY', [m for m in ('matplotlib', 'jinja2', 'sklearn', 'optuna', 'pandas') if m in sys.modules])"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert "report" in result.stdout and "HEAVY []" in result.stdout, result.stdout + result.stderr


# -- a real browser -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def chromium() -> str:
    """The browser, found before any job runs (with CI=true its absence fails the test)."""
    found = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
    if found is None:
        message = "headless Chromium is needed to render the report (apt-get install chromium)"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(message)
        pytest.skip(message)
    return found


@pytest.mark.parametrize("name", ["binary", "regression", "failing"])
def test_chromium_renders_the_report_without_errors(chromium: str, jobs: Jobs, name: str, tmp_path: Path) -> None:
    path = jobs.home / f"{name}.html"
    result = subprocess.run(
        [
            chromium,
            "--headless",
            "--disable-gpu",
            "--no-sandbox",
            f"--user-data-dir={tmp_path / 'profile'}",
            "--enable-logging=stderr",
            "--v=0",
            "--dump-dom",
            path.as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    console = [line for line in result.stderr.splitlines() if ":CONSOLE" in line or "Uncaught" in line]
    assert console == [], console  # no script error, no blocked load (the CSP would log it)
    dom = parse(result.stdout)
    for id_ in SECTIONS:
        assert dom.by_id(id_).tag == "section"
    assert dom.find_all("title")[0].text().startswith("automl report: job")
