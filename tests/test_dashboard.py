"""The AI metrics dashboard: its figures on a small data set computed by hand, window parsing, and
the admin page (access, links, inline SVG charts, a bounded number of queries).

Figures are checked twice: with the rows not rolled up yet (read from AiMetric) and after the
hourly rollup job (read from the rollups), with latency percentiles within 1 % of percentile_cont
either way. The rollup job itself: tests/test_dashboard_rollup.py."""

from __future__ import annotations

import html
import re
import uuid
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from django.test import Client
from django.utils import timezone

from ai_engine.pricing import GENAI_PRICES, UNPRICED
from aimetrics.charts import Point, bar_chart, column_chart, line_chart
from aimetrics.dashboard import Dashboard, dashboard_build
from aimetrics.models import AiMetric
from aimetrics.rollup import (
    aimetric_rollup,
    latency_bucket,
    latency_bucket_value,
    latency_percentile,
)
from aimetrics.services import aimetric_record
from aimetrics.windows import WindowError, window_parse
from tests import fakeai
from tests.factories import make_photo, make_project, make_user

pytestmark = pytest.mark.django_db

NOW = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)
SINCE = NOW - timedelta(hours=24)
SONNET = ("anthropic", fakeai.SONNET, "analyze_photo")
MINI = ("openai", fakeai.GPT, "detect_room")
# The latency histogram's buckets: each read within 1 % of any latency in it (aimetrics/rollup.py).
HISTOGRAM_ERROR = 0.01


def metric(
    at: datetime,
    call: tuple[str, str, str] = SONNET,
    *,
    latency_ms: int,
    error: str | None = None,
    retries: int = 0,
    tokens: tuple[int, int] = (0, 0),
    cost: str = "0",
    photo: Any = None,
    project: Any = None,
) -> AiMetric:
    """One AiMetric row, written by the service the pipeline uses, dated `at`."""
    row = aimetric_record(
        provider=call[0],
        model=call[1],
        operation=call[2],
        latency_ms=latency_ms,
        success=error is None,
        error_type=error,
        retries=retries,
        tokens_in=tokens[0],
        tokens_out=tokens[1],
        cost_usd=Decimal(cost),
        photo_id=photo,
        project_id=project,
    )
    AiMetric.objects.filter(pk=row.pk).update(created_at=at)  # auto_now_add: set it afterwards
    return row


class Known:
    """Seven calls inside [SINCE, NOW) and two just outside. Expected figures are worked out by
    hand in the tests; photos P1 (project X) and P2 (project Y)."""

    def __init__(self) -> None:
        self.p1, self.p2 = uuid.uuid4(), uuid.uuid4()
        self.x, self.y = uuid.uuid4(), uuid.uuid4()
        p1, p2, x, y = self.p1, self.p2, self.x, self.y
        # The window's first instant is inside it.
        metric(SINCE, latency_ms=100, tokens=(1000, 100), cost="0.003000", photo=p1, project=x)
        metric(h(-20), latency_ms=200, tokens=(1000, 200), cost="0.004500", photo=p1, project=x)
        metric(
            h(-10), latency_ms=300, retries=1, tokens=(2000, 300), cost="0.010500",
            photo=p2, project=y,
        )  # fmt: skip
        metric(h(-3), latency_ms=1000, error="TIMEOUT", retries=2, photo=p2, project=y)
        metric(h(-2), latency_ms=400, tokens=(500, 50), cost="0.002250")  # no photo
        metric(h(-19), MINI, latency_ms=50, tokens=(300, 10), cost="0.000450", photo=p1, project=x)
        metric(h(-1), MINI, latency_ms=150, error="RATE_LIMIT", retries=1, photo=p2, project=y)
        # Outside: one second too early, and at the (excluded) end.
        metric(SINCE - timedelta(seconds=1), latency_ms=99_999, cost="1", photo=p1, project=x)
        metric(NOW, MINI, latency_ms=99_999, error="NETWORK", retries=3, cost="1", photo=p2)


def h(hours: int) -> datetime:
    return NOW + timedelta(hours=hours)


@pytest.fixture(params=["not rolled up", "rolled up"])
def known(request: pytest.FixtureRequest, db: Any) -> Known:
    """The rows, read from AiMetric as they are, or after the rollup job has summed them."""
    rows = Known()
    if request.param == "rolled up":
        assert aimetric_rollup(settle=timedelta(0)) > 0
    return rows


def build(**options: Any) -> Dashboard:
    return dashboard_build(since=SINCE, until=NOW, **options)


def latency_is(value: float | None, expected: float) -> bool:
    """Within the histogram's relative error (exact up to 100 ms)."""
    if value is None:
        return False
    return abs(value - expected) < HISTOGRAM_ERROR * expected + 1e-9


# --- Figures --------------------------------------------------------------------------------


def test_summary_counts_calls_tokens_cost_and_photos_of_the_window(known: Known) -> None:
    s = build().summary
    assert (s.calls, s.successes, s.failures) == (7, 5, 2)
    assert s.success_rate == pytest.approx(5 / 7)
    assert (s.tokens_in, s.tokens_out) == (4800, 660)
    assert s.cost_usd == Decimal("0.020700")
    assert s.photos == 2  # P1, P2; the call without a photo counts in the cost only
    assert s.cost_per_photo == Decimal("0.010350")


def test_summary_latency_percentiles_match_hand_computed_values(known: Known) -> None:
    # Sorted latencies: 50 100 150 200 300 400 1000 (n = 7). percentile_cont interpolates at
    # position f·(n-1): P50 → 3 → 200; P95 → 5.7 → 400 + 0.7·600; P99 → 5.94 → 400 + 0.94·600.
    latency = build().summary.latency
    assert latency.mean == pytest.approx(2200 / 7)
    assert latency_is(latency.p50, 200)
    assert latency_is(latency.p95, 820)
    assert latency_is(latency.p99, 964)


def test_figures_per_provider_model_and_operation(known: Known) -> None:
    sonnet, mini = build().by_call
    assert (sonnet.provider, sonnet.model, sonnet.operation) == SONNET
    # 100 200 300 400 1000: P50 → position 2; P95 → 3.8 → 400 + 0.8·600; P99 → 3.96.
    assert (sonnet.calls, sonnet.successes) == (5, 4)
    assert sonnet.success_rate == pytest.approx(0.8)
    assert sonnet.latency.mean == pytest.approx(400)
    assert latency_is(sonnet.latency.p50, 300)
    assert latency_is(sonnet.latency.p95, 880)
    assert latency_is(sonnet.latency.p99, 976)
    assert (sonnet.tokens_in, sonnet.tokens_out, sonnet.cost_usd) == (
        4500,
        650,
        Decimal("0.020250"),
    )
    # 50 150: P50 → 0.5 → 100; P95 → 0.95 → 145; P99 → 149.
    assert (mini.provider, mini.model, mini.operation) == MINI
    assert (mini.calls, mini.successes, mini.failures) == (2, 1, 1)
    assert mini.latency.mean == pytest.approx(100)
    assert latency_is(mini.latency.p50, 100)
    assert latency_is(mini.latency.p95, 145)
    assert latency_is(mini.latency.p99, 149)
    assert mini.cost_usd == Decimal("0.000450")


def test_failures_by_error_type_most_frequent_first(known: Known) -> None:
    metric(h(-4), latency_ms=10, error="TIMEOUT")
    failures = [(f.error_type, f.calls) for f in build().failures]
    assert failures == [("TIMEOUT", 2), ("RATE_LIMIT", 1)]  # NETWORK is outside the window


def test_photos_that_needed_retries_grouped_by_photo(known: Known) -> None:
    dashboard = build()
    assert dashboard.retried_photo_count == 1
    (photo,) = dashboard.retried_photos
    assert (photo.photo_id, photo.project_id) == (known.p2, known.y)
    assert (photo.calls, photo.failures, photo.max_retries) == (3, 2, 2)
    assert photo.cost_usd == Decimal("0.010500")
    assert photo.last_call_at == h(-1)


def test_retried_photos_are_capped_and_counted(db: Any) -> None:
    for i in range(4):
        metric(h(-1 - i), latency_ms=10, retries=i + 1, photo=uuid.uuid4())
    dashboard = build(retried_limit=2)
    assert dashboard.retried_photo_count == 4
    assert [p.max_retries for p in dashboard.retried_photos] == [4, 3]  # most retried first


def test_cost_per_day_and_per_project_are_exact(known: Known) -> None:
    dashboard = build()
    days = [(d.day, d.calls, d.tokens_in, d.tokens_out, d.cost_usd) for d in dashboard.cost_by_day]
    assert days == [
        (date(2026, 11, 27), 3, 2300, 310, Decimal("0.007950")),
        (date(2026, 11, 28), 4, 2500, 350, Decimal("0.012750")),
    ]
    projects = [(p.project_id, p.calls, p.cost_usd) for p in dashboard.cost_by_project]
    assert projects == [(known.y, 3, Decimal("0.010500")), (known.x, 3, Decimal("0.007950"))]
    assert [p.project_id for p in build(top_projects=1).cost_by_project] == [known.y]


def test_hourly_series_for_a_day_daily_for_a_month(known: Known) -> None:
    hourly = build().series
    assert [b.start for b in hourly] == [SINCE, h(-20), h(-19), h(-10), h(-3), h(-2), h(-1)]
    for bucket, p95 in zip(hourly, [100, 200, 50, 300, 1000, 400, 150], strict=True):
        assert latency_is(bucket.p95, p95)  # one call each
    assert [b.failures for b in hourly] == [0, 0, 0, 0, 1, 0, 1]

    monthly = dashboard_build(since=NOW - timedelta(days=30), until=NOW)
    assert monthly.window.bucket == "day"
    day_27, day_28 = monthly.series
    assert day_27.start == datetime(2026, 11, 27, tzinfo=UTC)
    assert day_27.calls == 4  # the call one second before SINCE is in this window
    assert day_27.cost_usd == Decimal("1.007950")
    # 50 100 200 99999: P95 at position 2.85.
    assert latency_is(day_27.p95, 200 + 0.85 * (99_999 - 200))
    assert (day_28.calls, day_28.cost_usd) == (4, Decimal("0.012750"))


def test_the_rollup_job_changes_no_figure(db: Any) -> None:
    """The same dashboard, percentiles included, before and after the rows are rolled up: the
    rollups and the raw rows are summed into the same histogram edges."""
    Known()
    windows = [
        (SINCE, NOW),
        (NOW - timedelta(days=30), NOW),
        (h(-20), h(-2) - timedelta(minutes=7)),
    ]
    before = [dashboard_build(since=since, until=until) for since, until in windows]
    aimetric_rollup(settle=timedelta(0))
    assert [dashboard_build(since=since, until=until) for since, until in windows] == before


def test_latency_buckets_are_exact_to_100_ms_then_within_1_percent() -> None:
    assert [latency_bucket(ms) for ms in (0, 1, 99, 100)] == [0, 1, 99, 100]
    assert [latency_bucket(ms) for ms in (101, 102, 251, 1001, 2499, 60_001)] == [
        102, 102, 255, 1020, 2500, 61_000,
    ]  # fmt: skip
    for ms in [*range(0, 3000), *range(3000, 3_000_000, 997), 2**31 - 1]:
        edge = latency_bucket(ms)
        assert edge >= ms and latency_bucket(edge) == edge  # an edge is its own bucket
        assert abs(latency_bucket_value(edge) - ms) < HISTOGRAM_ERROR * ms + 1e-9, ms


def test_latency_percentiles_interpolate_like_percentile_cont() -> None:
    assert latency_percentile({}, 0.5) is None
    assert latency_percentile({7: 1}, 0.99) == 7
    assert latency_percentile({1: 1, 2: 1, 3: 1, 4: 1}, 0.5) == 2.5
    assert latency_percentile({10: 1, 20: 1, 30: 1, 40: 1, 50: 1}, 0.9) == pytest.approx(46)
    # 1000 ms is read as 995.5 (its bucket: 991–1000 ms); 400 ms as 398 (396–400 ms).
    assert latency_percentile({400: 3, 1000: 1}, 0.5) == 398
    assert latency_percentile({400: 1, 1000: 1}, 0.5) == pytest.approx((398 + 995.5) / 2)


def test_an_empty_window_has_zeros_and_no_percentiles(db: Any) -> None:
    dashboard = build()
    s = dashboard.summary
    assert (s.calls, s.cost_usd, s.photos, s.cost_per_photo, s.success_rate) == (
        0,
        Decimal("0"),
        0,
        None,
        None,
    )
    assert s.latency.p95 is None
    assert dashboard.by_call == dashboard.series == dashboard.failures == []


# --- Window parsing -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("since", "delta"),
    [
        ("24h", timedelta(hours=24)),
        ("7d", timedelta(days=7)),
        ("30d", timedelta(days=30)),
        ("90m", timedelta(minutes=90)),
    ],
)
def test_relative_windows_end_now(since: str, delta: timedelta) -> None:
    window = window_parse(since=since, now=NOW)
    assert (window.since, window.until) == (NOW - delta, NOW)


def test_custom_window_of_dates_includes_the_last_day() -> None:
    window = window_parse(since="2026-11-01", until="2026-11-07", now=NOW)
    assert window.since == datetime(2026, 11, 1, tzinfo=UTC)
    assert window.until == datetime(2026, 11, 8, tzinfo=UTC)
    assert window.bucket == "hour"  # 7 days: drawn per hour; longer: per day
    assert window_parse(since="2026-11-01", until="2026-11-08", now=NOW).bucket == "day"


def test_custom_window_of_datetimes() -> None:
    window = window_parse(since="2026-11-01T08:30", until="2026-11-02T10:00+01:00", now=NOW)
    assert window.since == datetime(2026, 11, 1, 8, 30, tzinfo=UTC)  # naive: the current zone
    assert window.until == datetime(2026, 11, 2, 9, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("since", "until", "field", "message"),
    [
        ("yesterday", None, "since", "neither a duration"),
        ("7 days", None, "since", "neither a duration"),
        ("2026-02-30", None, "since", "not a valid date"),
        ("2026-11-01", "soon", "until", "neither a duration"),
        ("2026-11-05", "2026-11-01", None, "before its end"),
        ("0h", None, None, "before its end"),
        ("2024-01-01", None, None, "at most 366 days"),
        ("999999d", None, "since", "too far back"),
    ],
)
def test_bad_windows_are_refused_with_a_reason(
    since: str, until: str | None, field: str | None, message: str
) -> None:
    with pytest.raises(WindowError, match=message) as caught:
        window_parse(since=since, until=until, now=NOW)
    assert caught.value.field == field


# --- Charts ---------------------------------------------------------------------------------


def test_chart_labels_are_escaped_and_coordinates_are_numbers() -> None:
    hostile = '<script>alert("x")</script>'
    for chart in (line_chart, column_chart, bar_chart):
        svg = chart([Point(hostile, 3.5), Point("b&c", 7)], title=hostile, unit="ms", empty="-")
        assert svg.startswith("<svg") and svg.endswith("</svg>")
        assert "<script" not in svg
        assert "&lt;script&gt;" in svg and "b&amp;c" in svg
        coordinates = r'\b(?:x|y|x1|x2|y1|y2|cx|cy|width|height)="([^"]*)"'
        for value in re.findall(coordinates, svg):
            float(value)  # every coordinate is a number
    assert "No data" in line_chart([], title="t", unit="ms", empty="No data")


# --- The admin page -------------------------------------------------------------------------

URL = "/admin/aimetrics/dashboard/"
METRICS = "/admin/aimetrics/aimetric/"


@pytest.fixture
def staff_client(db: Any) -> Client:
    client = Client()
    client.force_login(make_user(staff=True))
    return client


def test_anonymous_and_non_staff_users_are_sent_to_the_login_page(db: Any) -> None:
    anonymous = Client().get(URL)
    assert anonymous.status_code == 302 and "/admin/login/" in anonymous["Location"]
    client = Client()
    client.force_login(make_user())
    response = client.get(URL)
    assert response.status_code == 302 and "/admin/login/" in response["Location"]


def _recent_data() -> tuple[Any, Any]:
    """Calls in the last hours (the page's default window is the last 24 hours)."""
    project = make_project()
    photo = make_photo(project=project)
    now = timezone.now()
    for i, latency in enumerate([120, 480, 2400]):
        metric(
            now - timedelta(hours=i + 1), latency_ms=latency, tokens=(100, 10), cost="0.001000",
            photo=photo.pk, project=project.pk, retries=i,
        )  # fmt: skip
    metric(now - timedelta(minutes=5), MINI, latency_ms=900, error="RATE_LIMIT", retries=1,
           photo=photo.pk, project=project.pk)  # fmt: skip
    return photo, project


def test_staff_see_the_figures_and_links_to_photos_and_projects(staff_client: Client) -> None:
    photo, project = _recent_data()
    response = staff_client.get(URL)
    assert response.status_code == 200
    page = response.content.decode()
    assert response.context["summary"].calls == 4
    assert fakeai.SONNET in page and "RATE_LIMIT" in page
    assert f'href="/admin/photos/photo/{photo.pk}/change/"' in page
    assert f'href="/admin/photos/project/{project.pk}/change/"' in page
    assert "$0.003000" in page  # the cost of the window


def test_the_page_says_who_prices_the_calls_and_links_to_the_unpriced_ones(
    staff_client: Client, settings: Any
) -> None:
    settings.AI_PRICES = {"my-model": [1, 2], "other-model": [3, 4]}

    page = html.unescape(staff_client.get(URL).content.decode())

    assert f"Costs are priced by {GENAI_PRICES}." in page
    assert "AI_PRICES sets the prices of my-model, other-model." in page
    assert f'href="{METRICS}?price_source={UNPRICED}"' in page


def test_the_page_draws_three_inline_svg_charts_with_nothing_external(
    staff_client: Client,
) -> None:
    _recent_data()
    page = staff_client.get(URL).content.decode()
    charts = re.findall(r'<svg class="aimetrics-chart".*?</svg>', page, flags=re.S)
    assert len(charts) == 3
    for svg in charts:
        assert "http:" not in svg and "https:" not in svg and "//" not in svg
        assert "<script" not in svg and "href" not in svg
    assert "<polyline" in charts[0] and "<rect" in charts[1] and "RATE_LIMIT" in charts[2]
    # The page loads only the admin's own files: no CDN, no chart library.
    for url in re.findall(r'(?:src|href)="([^"]*)"', page):
        assert not url.startswith(("http:", "https:", "//")), url


@pytest.mark.parametrize(
    ("query", "since"),
    [
        ("", timedelta(hours=24)),
        ("?window=7d", timedelta(days=7)),
        ("?window=30d", timedelta(days=30)),
    ],
)
def test_preset_windows(staff_client: Client, query: str, since: timedelta) -> None:
    before = timezone.now()
    window = staff_client.get(URL + query).context["dashboard"].window
    assert before - since <= window.since <= timezone.now() - since


def test_a_custom_window(staff_client: Client) -> None:
    response = staff_client.get(
        URL, {"window": "custom", "since": "2026-11-01", "until": "2026-11-07"}
    )
    window = response.context["dashboard"].window
    assert (window.since, window.until) == (
        datetime(2026, 11, 1, tzinfo=UTC),
        datetime(2026, 11, 8, tzinfo=UTC),
    )


@pytest.mark.parametrize(
    ("params", "error"),
    [
        ({"window": "custom", "since": "last tuesday"}, "neither a duration"),
        ({"window": "custom"}, "Give the first day of the window."),
        ({"window": "custom", "since": "2026-11-09", "until": "2026-11-01"}, "before its end"),
        ({"window": "custom", "since": "2026-13-01"}, "not a valid date"),
        ({"window": "99d"}, "Select a valid choice"),
    ],
)
def test_bad_windows_show_a_form_error_not_a_500(
    staff_client: Client, params: dict[str, str], error: str
) -> None:
    response = staff_client.get(URL, params)
    assert response.status_code == 200
    assert "dashboard" not in response.context
    assert error in response.content.decode()


def test_the_number_of_queries_does_not_grow_with_the_data(
    staff_client: Client, django_assert_max_num_queries: Any
) -> None:
    _recent_data()
    now = timezone.now()
    for i in range(40):  # many photos, projects, hours and failures
        metric(now - timedelta(hours=i % 23, minutes=i), MINI, latency_ms=100 + i,
               error="TIMEOUT" if i % 3 else None, retries=i % 2, cost="0.000100",
               photo=uuid.uuid4(), project=uuid.uuid4())  # fmt: skip
    # Session, user and permissions (4); the figures (11 at most: the rollups' watermark before
    # and after; totals, latency per call, latency per bucket (2), projects, photos; retried
    # photos (3)); the panels other apps register: inventory's model accuracy (1).
    with django_assert_max_num_queries(16):
        assert staff_client.get(URL).status_code == 200


def test_the_metrics_changelist_links_to_the_dashboard(staff_client: Client) -> None:
    admin = make_user(staff=True, is_superuser=True)
    staff_client.force_login(admin)
    page = staff_client.get("/admin/aimetrics/aimetric/").content.decode()
    assert f'href="{URL}"' in page
