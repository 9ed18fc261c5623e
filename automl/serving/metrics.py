"""`/metrics` of the model server, in Prometheus' text format (the official client).

Per model and version: requests, rows predicted, errors by code and a latency histogram; per
alias the version it serves now; the prediction log's rows written and dropped. Each server
process (``--workers``) keeps its own figures, as Prometheus expects of a scraped target.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from automl.monitoring.log import PredictionLog
from automl.serving.runtime import ModelCache

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class _ServingState(Collector):
    """Figures read at scrape time: the version each alias serves, the prediction log's counters."""

    def __init__(self, cache: ModelCache, log: PredictionLog) -> None:
        self._cache = cache
        self._log = log

    def collect(self) -> Iterator[Metric]:
        alias = GaugeMetricFamily(
            "automl_alias_version", "Version number each tracked alias is served from.", labels=["model", "alias"]
        )
        alias_id = GaugeMetricFamily(
            "automl_alias_version_id", "Version id each tracked alias is served from.", labels=["model", "alias"]
        )
        for row in self._cache.status()["serving"]:
            if row["version"] is not None:
                alias.add_metric([row["model"], row["alias"]], row["version"])
            alias_id.add_metric([row["model"], row["alias"]], row["version_id"])
        yield alias
        yield alias_id
        logged = CounterMetricFamily(
            "automl_prediction_log_rows", "Rows written to the prediction log, or dropped.", labels=["state"]
        )
        logged.add_metric(["written"], self._log.written_rows)
        logged.add_metric(["dropped"], self._log.dropped_rows)
        yield logged


class ServerMetrics:
    """The server's Prometheus registry and the figures request handlers update."""

    def __init__(self, cache: ModelCache, log: PredictionLog) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "automl_predict_requests", "Prediction requests answered.", ["model", "version"], registry=self.registry
        )
        self.rows = Counter("automl_predicted_rows", "Rows predicted.", ["model", "version"], registry=self.registry)
        self.errors = Counter(
            "automl_predict_errors", "Prediction requests refused or failed, by error code.", ["model", "code"],
            registry=self.registry,
        )  # fmt: skip
        self.latency = Histogram(
            "automl_predict_latency_seconds", "Time to answer a prediction request.", ["model", "version"],
            buckets=LATENCY_BUCKETS, registry=self.registry,
        )  # fmt: skip
        self.registry.register(_ServingState(cache, log))

    def answered(self, model: str, version: int, rows: int, seconds: float) -> None:
        labels = (model, str(version))
        self.requests.labels(*labels).inc()
        self.rows.labels(*labels).inc(rows)
        self.latency.labels(*labels).observe(seconds)

    def failed(self, model: str, exc: Any) -> None:
        code = getattr(exc, "code", None) or (
            "INPUT_INVALID" if type(exc).__name__ == "RequestValidationError" else "INTERNAL_ERROR"
        )
        self.errors.labels(model, str(code)).inc()

    def render(self) -> tuple[bytes, str]:
        from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

        return generate_latest(self.registry), CONTENT_TYPE_LATEST
