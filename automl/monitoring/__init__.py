"""Monitoring a registered model: the training reference stored per version
(:mod:`~automl.monitoring.reference`), drift tests (:mod:`~automl.monitoring.drift`), anomalies
(:mod:`~automl.monitoring.anomalies`) and the stored monitor run (:mod:`~automl.monitoring.monitor`).
"""
