"""Celery task metrics and JSON worker logs, through Celery's signals (connected in
``OpsConfig.ready``, so in every worker and beat process).

- ``vigil_celery_tasks_total{task,state}`` and ``vigil_celery_task_duration_seconds{task}``:
  every run of a registered task (an unregistered name counts as ``other``);
- a periodic task's success is stored in the shared cache (``ops.periodic``) so the web's
  ``/metrics`` reports its age;
- a retried SSF push counts as ``vigil_ssf_deliveries_total{result="retried"}``;
- a task failing because PostgreSQL or Redis is unreachable counts as a dependency error.

Workers expose their samples either through a ``PROMETHEUS_MULTIPROC_DIR`` shared with the
web processes of the same host, or on their own port (``VIGIL_CELERY_METRICS_PORT``).
"""

from __future__ import annotations

import logging
import os
import time
from typing import Any

from celery import signals
from celery.app.task import Task
from django.conf import settings
from prometheus_client import REGISTRY, CollectorRegistry, multiprocess, start_http_server

from core import metrics
from core.logging import JsonLineFormatter
from core.outage import dependency_of

from . import periodic

logger = logging.getLogger(__name__)

SSF_PUSH_TASK = "shared_signals.deliver_security_event"
_started: dict[str, float] = {}


def _task_label(task: Task | None) -> str:
    name = getattr(task, "name", None) or ""
    app = getattr(task, "app", None)
    return name if app is not None and name in app.tasks else metrics.OTHER


def _prerun(task_id: str | None = None, **kwargs: Any) -> None:
    if task_id:
        _started[task_id] = time.perf_counter()


def _postrun(task_id: str | None = None, task: Task | None = None, state: str | None = None, **kwargs: Any) -> None:
    started = _started.pop(task_id, None) if task_id else None
    if started is not None:
        metrics.CELERY_DURATION.labels(_task_label(task)).observe(time.perf_counter() - started)


def _success(sender: Task | None = None, **kwargs: Any) -> None:
    label = _task_label(sender)
    metrics.CELERY_TASKS.labels(label, "succeeded").inc()
    if label != metrics.OTHER:
        periodic.mark_success(label)


def _failure(sender: Task | None = None, exception: BaseException | None = None, **kwargs: Any) -> None:
    metrics.CELERY_TASKS.labels(_task_label(sender), "failed").inc()
    dependency = dependency_of(exception)
    if dependency is not None:
        metrics.dependency_error(dependency, "task")


def _retry(sender: Task | None = None, **kwargs: Any) -> None:
    label = _task_label(sender)
    metrics.CELERY_TASKS.labels(label, "retried").inc()
    if label == SSF_PUSH_TASK:
        metrics.SSF_DELIVERIES.labels("retried").inc()


def _json_logs(logger: logging.Logger | None = None, **kwargs: Any) -> None:
    """Celery configures its own handlers; give them our JSON lines (docs/operations.md "Logs")."""
    if logger is None or str(getattr(settings, "VIGIL_LOG_FORMAT", "json")) != "json":
        return
    for handler in logger.handlers:
        handler.setFormatter(JsonLineFormatter())


def _serve_worker_metrics(**kwargs: Any) -> Any:
    """``VIGIL_CELERY_METRICS_PORT``: this worker serves its samples (and, in multiprocess
    mode, those of its pool's children) on that port, bound to ``VIGIL_CELERY_METRICS_ADDR``
    (default 127.0.0.1: reach it through the host's network policy, it has no token)."""
    port = str(getattr(settings, "VIGIL_CELERY_METRICS_PORT", "") or "")
    if not port:
        return None
    registry = REGISTRY
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
    address = str(getattr(settings, "VIGIL_CELERY_METRICS_ADDR", "127.0.0.1"))
    server, _thread = start_http_server(int(port), addr=address, registry=registry)
    logger.info("worker metrics on http://%s:%s/metrics", address, port)
    return server


def connect() -> None:
    signals.task_prerun.connect(_prerun, weak=False, dispatch_uid="vigil-metrics-prerun")
    signals.task_postrun.connect(_postrun, weak=False, dispatch_uid="vigil-metrics-postrun")
    signals.task_success.connect(_success, weak=False, dispatch_uid="vigil-metrics-success")
    signals.task_failure.connect(_failure, weak=False, dispatch_uid="vigil-metrics-failure")
    signals.task_retry.connect(_retry, weak=False, dispatch_uid="vigil-metrics-retry")
    signals.after_setup_logger.connect(_json_logs, weak=False, dispatch_uid="vigil-json-logs")
    signals.after_setup_task_logger.connect(_json_logs, weak=False, dispatch_uid="vigil-json-task-logs")
    signals.worker_ready.connect(_serve_worker_metrics, weak=False, dispatch_uid="vigil-worker-metrics")
