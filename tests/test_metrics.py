"""`/metrics` (access, names, labels and numbers) and the worker's Dramatiq exporter."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote

import dramatiq
import pytest
import redis
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from prometheus_client.parser import text_string_to_metric_families

from ai_engine.quota import Cost, Slot
from ai_engine.registry import breaker_from_settings, quota_from_settings
from aimetrics.rollup import aimetric_rollup, latency_bucket
from operations import metrics
from photos.models import Photo
from tests.factories import make_photo
from tests.test_dashboard import MINI, SONNET, metric

pytestmark = pytest.mark.django_db

OUTSIDE = "203.0.113.7"  # TEST-NET-3: never in an allowed network here
Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


@pytest.fixture(autouse=True)
def _fresh_totals() -> Iterator[None]:
    metrics.metrics_cache_clear()
    yield
    metrics.metrics_cache_clear()


def scrape(client: Client | None = None, **extra: Any) -> Any:
    return (client or Client()).get("/metrics", **extra)


def samples(response: Any) -> Samples:
    assert response.status_code == 200, response.content
    assert response["Content-Type"].startswith("text/plain; version=0.0.4")
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(response.content.decode())
        for sample in family.samples
    }


def value(found: Samples, name: str, **labels: str) -> float:
    return found[(name, frozenset(labels.items()))]


def call(names: tuple[str, str, str], outcome: str) -> dict[str, str]:
    provider, model, operation = names
    return {"provider": provider, "model": model, "operation": operation, "outcome": outcome}


# --- Access ---------------------------------------------------------------------------------


def test_refused_without_token_from_an_address_outside_the_allow_list(settings: Any) -> None:
    settings.METRICS_TOKEN = "s3cret-token"
    assert scrape(REMOTE_ADDR=OUTSIDE).status_code == 403
    assert scrape(REMOTE_ADDR=OUTSIDE, HTTP_AUTHORIZATION="Bearer wrong").status_code == 403
    assert scrape(REMOTE_ADDR=OUTSIDE, HTTP_AUTHORIZATION="Token s3cret-token").status_code == 403


def test_the_bearer_token_opens_it_from_anywhere(settings: Any) -> None:
    settings.METRICS_TOKEN = "s3cret-token"
    response = scrape(REMOTE_ADDR=OUTSIDE, HTTP_AUTHORIZATION="Bearer s3cret-token")
    assert response.status_code == 200
    assert response["Cache-Control"] == "no-store"


def test_no_token_configured_means_no_token_accepted(settings: Any) -> None:
    settings.METRICS_TOKEN = ""
    assert scrape(REMOTE_ADDR=OUTSIDE, HTTP_AUTHORIZATION="Bearer ").status_code == 403


def test_loopback_is_allowed_by_default() -> None:
    assert settings.METRICS_ALLOWED_NETWORKS == ["127.0.0.0/8", "::1/128"]
    assert scrape(REMOTE_ADDR="127.0.0.1").status_code == 200
    assert scrape(REMOTE_ADDR="::1").status_code == 200
    assert scrape(REMOTE_ADDR="::ffff:127.0.0.1").status_code == 200


def test_allowed_networks_come_from_the_setting(settings: Any) -> None:
    settings.METRICS_ALLOWED_NETWORKS = ["10.0.0.0/8", "2001:db8::/32"]
    assert scrape(REMOTE_ADDR="10.20.30.40").status_code == 200
    assert scrape(REMOTE_ADDR="2001:db8::5").status_code == 200
    assert scrape(REMOTE_ADDR="127.0.0.1").status_code == 403
    settings.METRICS_ALLOWED_NETWORKS = []  # `none`: the token only
    assert scrape(REMOTE_ADDR="127.0.0.1").status_code == 403


def test_a_bad_network_in_the_setting_is_a_configuration_error(settings: Any) -> None:
    settings.METRICS_ALLOWED_NETWORKS = ["10.0.0.0/33"]
    with pytest.raises(ImproperlyConfigured, match="10.0.0.0/33"):
        scrape(REMOTE_ADDR=OUTSIDE)


def test_only_get(settings: Any) -> None:
    assert Client().post("/metrics").status_code == 405


# --- Figures --------------------------------------------------------------------------------


def _ai_calls() -> None:
    now = timezone.now()
    old = now - timedelta(hours=3)  # in the settled, cached hours
    metric(old, latency_ms=200, tokens=(1000, 100), cost="0.003000")
    metric(now, latency_ms=1500, tokens=(2000, 200), cost="0.006000")
    metric(old, latency_ms=30_000, error="TIMEOUT")
    metric(now, MINI, latency_ms=100, error="RATE_LIMIT")


def test_ai_call_counters_latency_histograms_tokens_and_cost() -> None:
    _ai_calls()
    found = samples(scrape())
    ok, failed = call(SONNET, "success"), call(SONNET, "failure")
    assert value(found, "moverz_ai_calls_total", **ok) == 2
    assert value(found, "moverz_ai_calls_total", **failed) == 1
    assert value(found, "moverz_ai_calls_total", **call(MINI, "failure")) == 1
    assert ("moverz_ai_calls_total", frozenset(call(MINI, "success").items())) not in found

    # 200 ms and 1500 ms: cumulative buckets, the sum in seconds.
    histogram = "moverz_ai_call_latency_seconds"
    for le, count in [("0.25", 1), ("0.5", 1), ("1.0", 1), ("2.0", 2), ("60.0", 2), ("+Inf", 2)]:
        assert value(found, f"{histogram}_bucket", **ok, le=le) == count, le
    assert value(found, f"{histogram}_count", **ok) == 2
    assert value(found, f"{histogram}_sum", **ok) == pytest.approx(1.7)
    # 30 s exactly is in the 30 s bucket (le: less than or equal).
    assert value(found, f"{histogram}_bucket", **failed, le="20.0") == 0
    assert value(found, f"{histogram}_bucket", **failed, le="30.0") == 1

    labels = dict(zip(("provider", "model", "operation"), SONNET, strict=True))
    assert value(found, "moverz_ai_tokens_total", **labels, direction="in") == 3000
    assert value(found, "moverz_ai_tokens_total", **labels, direction="out") == 300
    assert value(found, "moverz_ai_cost_usd_total", **labels) == pytest.approx(0.009)
    assert value(found, "moverz_ai_call_failures_total", **labels, error_type="TIMEOUT") == 1
    mini = dict(zip(("provider", "model", "operation"), MINI, strict=True))
    assert value(found, "moverz_ai_call_failures_total", **mini, error_type="RATE_LIMIT") == 1


def test_photo_status_counts_and_queue_depths(django_capture_on_commit_callbacks: Any) -> None:
    done, error, _pending = make_photo(), make_photo(), make_photo()
    Photo.objects.filter(pk=done.pk).update(status=Photo.Status.DONE)
    Photo.objects.filter(pk=error.pk).update(status=Photo.Status.ERROR)
    with django_capture_on_commit_callbacks(execute=True):
        make_photo(enqueue=True)  # one message waiting in photo-analyze
    found = samples(scrape())
    photos = {s: value(found, "moverz_photos", status=s) for s in Photo.Status.values}
    assert photos == {"PENDING": 2, "PROCESSING": 0, "DONE": 1, "ERROR": 1}
    queue = "photo-analyze"
    assert value(found, "moverz_queue_messages", queue=queue, state="waiting") == 1
    for state in ("delayed", "active", "dead"):
        assert value(found, "moverz_queue_messages", queue=queue, state=state) == 0
    assert value(found, "moverz_queue_finished", queue=queue, outcome="completed") == 1
    assert value(found, "moverz_queue_finished", queue=queue, outcome="failed") == 1
    assert value(found, "moverz_queue_messages", queue="inventory-sync", state="waiting") == 0
    for section in ("queues", "photos", "ai"):
        assert value(found, "moverz_metrics_section_up", section=section) == 1
        assert (
            "moverz_metrics_section_duration_seconds",
            frozenset({("section", section)}),
        ) in found


def test_openmetrics_when_the_scraper_asks_for_it() -> None:
    _ai_calls()
    response = scrape(HTTP_ACCEPT="application/openmetrics-text; version=1.0.0")
    assert response["Content-Type"].startswith("application/openmetrics-text")
    text = response.content.decode()
    assert text.endswith("# EOF\n")
    assert "# TYPE moverz_ai_calls counter" in text


def test_settled_hours_are_summed_once_recent_rows_at_every_scrape() -> None:
    now = timezone.now()
    ok = call(SONNET, "success")
    metric(now - timedelta(hours=5), latency_ms=100)
    with CaptureQueriesContext(connection) as first:
        assert value(samples(scrape()), "moverz_ai_calls_total", **ok) == 1

    metric(now, latency_ms=100)  # recent: counted at the next scrape
    metric(now - timedelta(hours=4), latency_ms=100)  # settled: only once the hour turns
    with CaptureQueriesContext(connection) as second:
        assert value(samples(scrape()), "moverz_ai_calls_total", **ok) == 2

    def reads(queries: CaptureQueriesContext) -> int:
        return sum("aimetrics_aimetric" in q["sql"] for q in queries.captured_queries)

    # Each read: the rollups' watermark, the call sums, the latency histograms, the watermark.
    assert (reads(first), reads(second)) == (8, 4)  # settled + recent, then recent only
    metrics.metrics_cache_clear()
    assert value(samples(scrape()), "moverz_ai_calls_total", **ok) == 3


def test_the_counters_are_the_same_once_the_rows_are_rolled_up() -> None:
    _ai_calls()
    metric(timezone.now() - timedelta(days=40), latency_ms=13_000, cost="0.000001")

    def ai_samples() -> Samples:
        return {key: v for key, v in samples(scrape()).items() if key[0].startswith("moverz_ai_")}

    before = ai_samples()
    assert before
    aimetric_rollup(settle=timedelta(0))
    metrics.metrics_cache_clear()
    assert ai_samples() == before


def test_the_latency_bounds_are_edges_of_the_histogram() -> None:
    """So "calls at most X seconds" is an exact count, not an estimate."""
    assert all(latency_bucket(bound) == bound for bound in metrics.LATENCY_BUCKETS_MS)


def test_a_section_that_fails_is_reported_and_the_others_still_arrive(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def redis_down() -> None:
        raise redis.ConnectionError("Connection refused")

    monkeypatch.setattr(metrics, "queue_stats", redis_down)
    _ai_calls()
    found = samples(scrape())
    assert value(found, "moverz_metrics_section_up", section="queues") == 0
    assert value(found, "moverz_metrics_section_up", section="ai") == 1
    assert not any(name in ("moverz_queue_messages", "moverz_queue_finished") for name, _ in found)
    assert value(found, "moverz_ai_calls_total", **call(SONNET, "success")) == 2


def test_a_scrape_reads_a_fixed_number_of_queries(django_assert_max_num_queries: Any) -> None:
    _ai_calls()
    for i in range(30):
        metric(timezone.now(), (f"provider{i}", "m", "detect_room"), latency_ms=10 * i)
    scrape()  # the settled hours are now cached
    # queue_stats: photo and snapshot counts (2); photo statuses (1); AI calls (4: the rollups'
    # watermark, the call sums, the latency histograms, the watermark again); webhook
    # deliveries by status (2: the queue's row, the webhooks section); expired leases (1).
    with django_assert_max_num_queries(10):
        scrape()


# --- What the alerting rules and an autoscaler read ----------------------------------------


def test_age_of_the_oldest_waiting_message_per_queue(redis_client: Any) -> None:
    found = samples(scrape())
    for queue in ("photo-analyze", "inventory-sync"):
        assert value(found, "moverz_queue_oldest_message_age_seconds", queue=queue) == 0
    oldest: dramatiq.Message[Any] = dramatiq.Message(
        queue_name="photo-analyze",
        actor_name="analyze_photo",
        args=("old",),
        kwargs={},
        options={},
        message_timestamp=int((time.time() - 300) * 1000),
    )
    broker = dramatiq.get_broker()
    broker.enqueue(oldest)
    broker.enqueue(oldest.copy(args=("new",), message_timestamp=int(time.time() * 1000)))

    found = samples(scrape())
    age = value(found, "moverz_queue_oldest_message_age_seconds", queue="photo-analyze")
    assert 299 <= age < 330
    assert value(found, "moverz_queue_oldest_message_age_seconds", queue="inventory-sync") == 0


def test_photos_stuck_in_processing_past_their_lease() -> None:
    stuck, running, _pending = make_photo(), make_photo(), make_photo()
    now = timezone.now()
    Photo.objects.filter(pk=stuck.pk).update(
        status=Photo.Status.PROCESSING, lease_expires_at=now - timedelta(seconds=1)
    )
    Photo.objects.filter(pk=running.pk).update(
        status=Photo.Status.PROCESSING, lease_expires_at=now + timedelta(minutes=1)
    )
    assert value(samples(scrape()), "moverz_photos_lease_expired") == 1


def test_circuit_state_per_provider(settings: Any, redis_client: Any) -> None:
    settings.AI_PROVIDERS = ["anthropic", "openai", "fake"]
    breaker = breaker_from_settings(redis_client=redis_client)
    for _ in range(settings.AI_BREAKER_THRESHOLD):
        breaker.record_failure("openai")
    found = samples(scrape())
    circuits = {
        p: value(found, "moverz_ai_circuit_open", provider=p) for p in settings.AI_PROVIDERS
    }
    assert circuits == {"anthropic": 0, "openai": 1, "fake": 0}
    for section in ("backlog", "leases", "circuits"):
        assert value(found, "moverz_metrics_section_up", section=section) == 1


def test_quota_slots_in_use_saturation_and_deferrals(settings: Any, redis_client: Any) -> None:
    settings.AI_QUOTAS = {"anthropic": {"rpm": 6, "concurrency": 4}, "openai": {"itpm": 6000}}
    settings.AI_QUOTA_BURST_S = 20  # two requests in the bucket, one back every 10 s
    settings.AI_PRIORITY_RESERVE_S = 0  # normal calls may use all of it
    limiter = quota_from_settings(redis_client=redis_client)
    asks = [
        limiter.acquire(provider="anthropic", model="m", tenant="p", cost=Cost()) for _ in range(3)
    ]
    assert [isinstance(ask, Slot) for ask in asks] == [True, True, False]

    found = samples(scrape())
    assert value(found, "moverz_ai_quota_slots_in_use", quota="anthropic") == 2
    assert value(found, "moverz_ai_quota_slots_in_use", quota="openai") == 0
    assert value(found, "moverz_ai_quota_limit", quota="anthropic", dimension="requests") == 6
    assert value(found, "moverz_ai_quota_limit", quota="anthropic", dimension="concurrency") == 4
    saturation = value(found, "moverz_ai_quota_saturation", quota="anthropic", dimension="requests")
    assert 0.9 <= saturation <= 1.0  # both requests of the bucket spent, a little refilled
    assert value(found, "moverz_ai_quota_saturation", quota="anthropic", dimension="concurrency")
    assert value(found, "moverz_ai_quota_saturation", quota="openai", dimension="input_tokens") == 0
    assert value(found, "moverz_ai_quota_deferrals_total", quota="anthropic", reason="rpm") == 1
    assert value(found, "moverz_metrics_section_up", section="quotas") == 1


# --- The worker's exporter ------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _database_url() -> str:
    db = connection.settings_dict
    credentials = quote(db["USER"] or "", safe="")
    if db["PASSWORD"]:
        credentials += ":" + quote(db["PASSWORD"], safe="")
    return f"postgres://{credentials}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"


def _worker(env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("wb") as out:
        return subprocess.Popen(
            [sys.executable, "manage.py", "rundramatiq", "--processes", "1", "--threads", "2"],
            cwd=Path(__file__).resolve().parent.parent,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def _exported_messages(port: int) -> float | None:
    """dramatiq_messages_total of analyze_photo on the exporter, or None if it is not up."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=2) as answer:
            text = answer.read().decode()
    except OSError:
        return None
    return sum(
        sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == "dramatiq_messages_total"
        and sample.labels.get("actor_name") == "analyze_photo"
    )


@pytest.mark.e2e
def test_workers_export_dramatiq_metrics_and_a_port_clash_stops_no_worker(
    tmp_path: Path,
) -> None:
    from photos.tasks import analyze_photo

    port = _free_port()
    (tmp_path / "prom").mkdir()
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "moverz.settings",
        "DATABASE_URL": _database_url(),
        "DRAMATIQ_NAMESPACE": settings.DRAMATIQ_NAMESPACE,
        "PYTHONUNBUFFERED": "1",
        "dramatiq_prom_host": "127.0.0.1",
        "dramatiq_prom_port": str(port),  # both workers ask for the same port
        "dramatiq_prom_db": str(tmp_path / "prom"),
    }
    first = _worker(env, tmp_path / "first.log")
    second: subprocess.Popen[bytes] | None = None
    try:
        deadline = time.monotonic() + 60
        while _exported_messages(port) is None:
            assert first.poll() is None, (tmp_path / "first.log").read_text()
            assert time.monotonic() < deadline, "the exporter never answered"
            time.sleep(0.2)
        second = _worker(env, tmp_path / "second.log")
        while b"Address already in use" not in (tmp_path / "second.log").read_bytes():
            assert time.monotonic() < deadline, (tmp_path / "second.log").read_text()
            time.sleep(0.2)

        for _ in range(8):  # photos that do not exist: each message is a quick no-op
            analyze_photo.send(str(uuid.uuid4()))
        # Both workers write into the same metrics directory; the first one's exporter sums them.
        while _exported_messages(port) != 8:
            assert time.monotonic() < deadline, f"exported: {_exported_messages(port)}"
            time.sleep(0.2)
        assert first.poll() is None and second.poll() is None  # the clash stopped no worker
    finally:
        for process in (first, second):
            if process is not None and process.poll() is None:
                process.terminate()
                try:
                    process.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    os.killpg(process.pid, 9)
                    process.wait(timeout=5)
