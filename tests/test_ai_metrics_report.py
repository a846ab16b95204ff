"""`manage.py ai_metrics_report`: the dashboard's figures as a table, CSV and JSON."""

from __future__ import annotations

import csv
import io
import json
from typing import Any

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from tests.fakeai import GPT, SONNET
from tests.test_dashboard import HISTOGRAM_ERROR, NOW, SINCE, Known

pytestmark = pytest.mark.django_db

WINDOW = ["--since", SINCE.isoformat(), "--until", NOW.isoformat()]


@pytest.fixture
def known(db: Any) -> Known:
    return Known()


def report(*args: str) -> str:
    out = io.StringIO()
    call_command("ai_metrics_report", *args, stdout=out, no_color=True)
    return out.getvalue()


def test_table_shows_every_section(known: Known) -> None:
    output = report(*WINDOW)
    for heading in (
        "summary",
        "by call",
        "failures",
        "retried photos",
        "cost by day",
        "cost by project",
    ):
        assert f"\n{heading}\n" in f"\n{output}"
    lines = output.splitlines()
    assert any(line.split() == ["calls", "7"] for line in lines)
    assert any(line.split() == ["cost_per_photo_usd", "0.010350"] for line in lines)
    sonnet = next(line for line in lines if SONNET in line).split()
    # provider model operation calls successes rate mean p50 p95 p99 tokens_in tokens_out cost
    assert sonnet[:7] + sonnet[10:] == [
        "anthropic",
        SONNET,
        "analyze_photo",
        "5",
        "4",
        "80.0",
        "400.0",
        "4500",
        "650",
        "0.020250",
    ]
    for shown, exact in zip(sonnet[7:10], [300, 880, 976], strict=True):  # the histogram's
        assert float(shown) == pytest.approx(exact, rel=HISTOGRAM_ERROR)
    assert str(known.p2) in output and str(known.y) in output


def _csv_blocks(text: str) -> dict[str, list[dict[str, str]]]:
    blocks: dict[str, list[dict[str, str]]] = {}
    for block in text.strip().split("\n\n"):
        rows = list(csv.DictReader(io.StringIO(block)))
        assert rows, block
        blocks[rows[0]["section"]] = rows
    return blocks


def test_csv_has_one_block_per_section(known: Known) -> None:
    blocks = _csv_blocks(report(*WINDOW, "--format", "csv"))
    assert list(blocks) == [
        "summary",
        "by_call",
        "failures",
        "retried_photos",
        "cost_by_day",
        "cost_by_project",
    ]
    (summary,) = blocks["summary"]
    assert summary["calls"] == "7" and summary["cost_usd"] == "0.020700"
    assert float(summary["p95_ms"]) == pytest.approx(820, rel=HISTOGRAM_ERROR)
    assert summary["success_rate_pct"] == "71.4"
    assert [(r["error_type"], r["calls"]) for r in blocks["failures"]] == [
        ("RATE_LIMIT", "1"),
        ("TIMEOUT", "1"),
    ]
    (retried,) = blocks["retried_photos"]
    assert retried["photo_id"] == str(known.p2) and retried["max_retries"] == "2"
    assert [(r["day"], r["cost_usd"]) for r in blocks["cost_by_day"]] == [
        ("2026-11-27", "0.007950"),
        ("2026-11-28", "0.012750"),
    ]
    assert [r["project_id"] for r in blocks["cost_by_project"]] == [str(known.y), str(known.x)]


def test_json_keeps_exact_costs(known: Known) -> None:
    document = json.loads(report(*WINDOW, "--format", "json", "--top", "1"))
    assert document["window"] == {
        "since": SINCE.isoformat(),
        "until": NOW.isoformat(),
        "bucket": "hour",
    }
    summary = document["summary"]
    assert summary["cost_usd"] == "0.020700" and summary["cost_per_photo"] == "0.010350"
    assert (summary["calls"], summary["failures"], summary["photos"]) == (7, 2, 2)
    assert summary["latency"]["p99"] == pytest.approx(964, rel=HISTOGRAM_ERROR)  # the histogram
    mini = document["by_call"][1]
    assert (mini["model"], mini["success_rate"], mini["latency"]["p95"]) == (
        GPT,
        0.5,
        pytest.approx(145, rel=HISTOGRAM_ERROR),
    )
    assert document["retried_photo_count"] == 1
    assert document["retried_photos"][0]["photo_id"] == str(known.p2)
    assert [p["project_id"] for p in document["cost_by_project"]] == [str(known.y)]
    assert len(document["series"]) == 7


def test_the_report_is_the_same_once_the_rows_are_rolled_up(known: Known) -> None:
    before = report(*WINDOW, "--format", "csv")
    call_command("aimetrics_rollup", "--settle", "0", stdout=io.StringIO())
    assert report(*WINDOW, "--format", "csv") == before


def test_defaults_to_the_last_24_hours(db: Any) -> None:
    document = json.loads(report("--format", "json"))
    assert document["window"]["bucket"] == "hour"
    assert document["summary"]["calls"] == 0
    assert "(none)" in report()  # empty sections say so


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--since", "last week"], "--since: .*neither a duration"),
        (["--since", "7d", "--until", "tomorrow"], "--until: .*neither a duration"),
        (["--since", "2026-11-05", "--until", "2026-11-01"], "before its end"),
        (["--format", "xml"], "invalid choice"),
        (["--top", "0"], "--top must be at least 1"),
        (["--retried", "-1"], "--retried must be at least 1"),
    ],
)
def test_bad_arguments_are_command_errors(db: Any, args: list[str], message: str) -> None:
    with pytest.raises(CommandError, match=message):
        report(*args)
