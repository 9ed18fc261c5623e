"""Celery app factory for the automl fleet.

Settings for long tasks (Celery's "optimizing" guide): late acks and rejection on a lost worker
so a killed worker's task is delivered again; prefetch 1 so a busy worker holds no queued
messages; task time limits below Redis's visibility timeout so a task still running is never
delivered a second time; the control queue (start, finalize) apart from the long trial queue.
"""

from __future__ import annotations

from celery import Celery
from kombu.entity import Queue

from automl.config import Settings, load_settings

CONTROL_QUEUE = "automl.control"
TRIALS_QUEUE = "automl.trials"
VISIBILITY_TIMEOUT_S = 4 * 3600
TASK_TIME_LIMIT_S = 3 * 3600  # below the visibility timeout; trial tasks hand over every few minutes


def create_app(settings: Settings | None = None) -> Celery:
    settings = settings or load_settings()
    app = Celery("automl", broker=settings.broker_url, include=["workers.tasks"])
    app.conf.update(
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        task_default_queue=CONTROL_QUEUE,
        task_queues=(Queue(CONTROL_QUEUE), Queue(TRIALS_QUEUE)),  # type: ignore[no-untyped-call]
        task_routes={"automl.run_trials": {"queue": TRIALS_QUEUE}},
        broker_transport_options={"visibility_timeout": VISIBILITY_TIMEOUT_S},
        task_time_limit=TASK_TIME_LIMIT_S,
        task_ignore_result=True,
        broker_connection_retry_on_startup=True,
        broker_connection_max_retries=None,
        worker_hijack_root_logger=False,
        worker_send_task_events=False,
        task_serializer="json",
        accept_content=["json"],
    )
    return app


app = create_app  # `celery -A workers.app` finds the factory
