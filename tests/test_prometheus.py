"""Prometheus against Vigil (docs/operations.md "Dashboards and alerts"): the alert rules pass
``promtool check rules`` and their unit tests; the dashboard and the rules name only metrics
Vigil exposes; and a real Prometheus (Debian's package) scrapes a live gunicorn with the
bearer token, sees the samples of both workers added up, loads the rules and evaluates the
key-rotation alert's expression to a firing series."""

from __future__ import annotations

import json
import re
import subprocess
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import requests
import yaml
from django.utils import timezone
from prometheus_client import REGISTRY, CollectorRegistry

from core import keys
from core.models import SigningKey
from ops.collector import SharedStateCollector
from tests.live_stack import free_port, gunicorn, stop, wait_until

ROOT = Path(__file__).resolve().parent.parent
RULES = ROOT / "deploy" / "prometheus" / "vigil-alerts.yml"
RULE_TESTS = ROOT / "deploy" / "prometheus" / "vigil-alerts.test.yml"
DASHBOARD = ROOT / "deploy" / "grafana" / "vigil-dashboard.json"
PROMETHEUS, PROMTOOL = "/usr/bin/prometheus", "/usr/bin/promtool"
TOKEN = "prometheus-scrape-token-0123456789"
SUFFIXES = ("_total", "_bucket", "_count", "_sum", "_created")


def _promtool(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([PROMTOOL, *args], capture_output=True, text=True, cwd=RULES.parent, timeout=60)


@pytest.mark.prometheus
def test_promtool_checks_the_rules() -> None:
    checked = _promtool("check", "rules", RULES.name)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "SUCCESS: 11 rules found" in checked.stdout
    tested = _promtool("test", "rules", RULE_TESTS.name)
    assert tested.returncode == 0, tested.stdout + tested.stderr


def _exposed_names() -> set[str]:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(SharedStateCollector())
    families = [*REGISTRY.collect(), *registry.collect()]
    return {family.name for family in families if family.name.startswith("vigil_")}


def _base(name: str) -> str:
    for suffix in SUFFIXES:
        if name.endswith(suffix):
            return name[: -len(suffix)]
    return name


@pytest.mark.django_db
def test_dashboard_and_rules_use_only_metrics_vigil_exposes() -> None:
    exposed = _exposed_names()
    rules = yaml.safe_load(RULES.read_text())
    expressions = [rule["expr"] for group in rules["groups"] for rule in group["rules"]]
    dashboard = json.loads(DASHBOARD.read_text())
    expressions += [target["expr"] for panel in dashboard["panels"] for target in panel["targets"]]
    used = {_base(name) for expr in expressions for name in re.findall(r"\bvigil_[a-z_]+", expr)}
    assert used and used <= exposed, used - exposed
    assert len({panel["id"] for panel in dashboard["panels"]}) == len(dashboard["panels"])


PROMETHEUS_CONF = """
global: {{scrape_interval: 1s, evaluation_interval: 1s}}
rule_files: ["{rules}"]
scrape_configs:
  - job_name: vigil
    metrics_path: /metrics
    authorization: {{type: Bearer, credentials: "{token}"}}
    static_configs: [{{targets: ["127.0.0.1:{port}"]}}]
"""


class Prometheus:
    def __init__(self, workdir: Path, target_port: int):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        conf = workdir / "prometheus.yml"
        conf.write_text(PROMETHEUS_CONF.format(rules=RULES, token=TOKEN, port=target_port))
        self.log = (workdir / "prometheus.log").open("wb")
        self.proc = subprocess.Popen(
            [PROMETHEUS, f"--config.file={conf}", f"--storage.tsdb.path={workdir / 'data'}",
             f"--web.listen-address=127.0.0.1:{self.port}"], stdout=self.log, stderr=subprocess.STDOUT)

    def query(self, expr: str) -> list[dict[str, Any]]:
        body = requests.get(f"{self.url}/api/v1/query", params={"query": expr}, timeout=5).json()
        assert body["status"] == "success", body
        return list(body["data"]["result"])

    def stop(self) -> None:
        stop(self.proc)
        self.log.close()


@pytest.mark.prometheus
@pytest.mark.postgres
@pytest.mark.redis
@pytest.mark.live
@pytest.mark.django_db(transaction=True)
def test_a_real_prometheus_scrapes_vigil_and_evaluates_an_alert(tmp_path: Path) -> None:
    keys.ensure_keys()
    SigningKey.objects.filter(alg="ES256").update(activates_at=timezone.now() - timedelta(days=40))
    multiproc = tmp_path / "multiproc"
    multiproc.mkdir()
    with gunicorn(tmp_path, None, "-w", "2", PROMETHEUS_MULTIPROC_DIR=str(multiproc),
                  VIGIL_METRICS_TOKEN=TOKEN) as server:
        for _ in range(20):
            assert requests.get(f"{server.base}/healthz", timeout=5).status_code == 200
        assert requests.get(f"{server.base}/metrics", timeout=5).status_code == 403  # not without the token
        prometheus = Prometheus(tmp_path, server.port)
        try:
            wait_until(lambda: prometheus.query('up{job="vigil"} == 1'), timeout=30, what="the first scrape")
            healthz = prometheus.query('sum(vigil_http_requests_total{endpoint="ops:healthz"})')
            assert float(healthz[0]["value"][1]) == 20  # both workers' samples, added up
            assert len(list(multiproc.glob("counter_*.db"))) >= 1
            overdue = 'min by (alg) (vigil_signing_key_next_rotation_seconds) < -7200'  # VigilSigningKeyRotationOverdue
            firing = prometheus.query(overdue)
            assert [series["metric"]["alg"] for series in firing] == ["ES256"]
            wait_until(lambda: _alert_state(prometheus, "VigilSigningKeyRotationOverdue") == "pending",
                       timeout=20, what="the alert to be pending")
            assert all(rule["health"] == "ok" for rule in _rules(prometheus)), _rules(prometheus)
        finally:
            prometheus.stop()


def _rules(prometheus: Prometheus) -> list[dict[str, Any]]:
    groups = requests.get(f"{prometheus.url}/api/v1/rules", timeout=5).json()["data"]["groups"]
    return [rule for group in groups for rule in group["rules"]]


def _alert_state(prometheus: Prometheus, name: str) -> str | None:
    time.sleep(0.5)
    alerts = requests.get(f"{prometheus.url}/api/v1/alerts", timeout=5).json()["data"]["alerts"]
    return next((alert["state"] for alert in alerts if alert["labels"]["alertname"] == name), None)
