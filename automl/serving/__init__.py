"""Serving registered models over HTTP: the model runtime (:mod:`automl.serving.runtime`: loaded
models, hot swap) and the FastAPI shell over it (:mod:`automl.serving.app`)."""

from __future__ import annotations

from automl.predict import single_threaded
from automl.serving.app import ServeSettings, create_app, serve_settings
from automl.serving.runtime import ModelCache

__all__ = ["ModelCache", "ServeSettings", "create_app", "serve_settings", "single_threaded"]
