"""The worker fleet: a Celery app factory and thin tasks that call :mod:`automl.fleet`."""
