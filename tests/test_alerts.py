"""The alerting rules (deploy/prometheus): promtool's own tests of them, and that every metric they
read is one `/metrics` exposes, so the rules cannot drift from the code."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from django.test import Client
from django.utils import timezone
from prometheus_client.parser import text_string_to_metric_families

from tests.factories import make_photo
from tests.test_dashboard import metric

RULES_DIR = Path(__file__).resolve().parent.parent / "deploy" / "prometheus"
RULES = RULES_DIR / "alerts.yml"
PROMTOOL = shutil.which("promtool")
needs_promtool = pytest.mark.skipif(
    PROMTOOL is None,
    reason="promtool is not installed (Debian: apt-get install prometheus; .ci/run installs it)",
)


def _promtool(*args: str) -> subprocess.CompletedProcess[str]:
    assert PROMTOOL
    return subprocess.run(
        [PROMTOOL, *args], cwd=RULES_DIR, capture_output=True, text=True, timeout=60
    )


@needs_promtool
def test_the_rules_are_valid_prometheus_rules() -> None:
    result = _promtool("check", "rules", RULES.name)
    assert result.returncode == 0, result.stdout + result.stderr


@needs_promtool
def test_the_rules_fire_and_stay_quiet_as_their_tests_say() -> None:
    result = _promtool("test", "rules", "alerts_test.yml")
    assert result.returncode == 0, result.stdout + result.stderr


def _rule_metric_names() -> set[str]:
    """Every `moverz_*` name in the rules' expressions (comments, hence templates, excluded)."""
    groups = yaml.safe_load(RULES.read_text())["groups"]
    exprs = [rule["expr"] for group in groups for rule in group["rules"]]
    return {name for expr in exprs for name in re.findall(r"\bmoverz_[a-z0-9_]+", expr)}


@pytest.mark.django_db
def test_every_metric_the_rules_read_is_exposed_by_metrics(redis_client: Any) -> None:
    metric(timezone.now(), latency_ms=100)  # one AI call, so its counters carry samples
    make_photo()
    response = Client().get("/metrics")
    assert response.status_code == 200
    exposed: set[str] = set()
    for family in text_string_to_metric_families(response.content.decode()):
        exposed.add(family.name)
        exposed |= {sample.name for sample in family.samples}
    used = _rule_metric_names()
    assert len(used) >= 6
    assert used <= exposed, f"rules read metrics /metrics does not expose: {used - exposed}"
