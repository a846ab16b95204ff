"""`manage.py ai_metrics_report`: the AI metrics dashboard's figures in a terminal."""

from __future__ import annotations

import csv
import dataclasses
import json
import uuid
from collections.abc import Sequence
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from aimetrics.dashboard import Dashboard, dashboard_build
from aimetrics.windows import WindowError, window_parse
from infra.progress import format_table

FORMATS = ("table", "csv", "json")


def _ms(value: float | None) -> str:
    return "" if value is None else f"{value:.1f}"


def _percent(value: float | None) -> str:
    return "" if value is None else f"{100 * value:.1f}"


def report_sections(dashboard: Dashboard) -> list[tuple[str, list[str], list[list[Any]]]]:
    """(section, headers, rows) for the table and CSV formats."""
    s = dashboard.summary
    latency = [s.latency.mean, s.latency.p50, s.latency.p95, s.latency.p99]
    summary_row = [
        dashboard.window.since.isoformat(),
        dashboard.window.until.isoformat(),
        s.calls,
        s.successes,
        s.failures,
        _percent(s.success_rate),
        *(_ms(v) for v in latency),
        s.tokens_in,
        s.tokens_out,
        s.cost_usd,
        s.photos,
        "" if s.cost_per_photo is None else s.cost_per_photo,
    ]
    latency_headers = ["mean_ms", "p50_ms", "p95_ms", "p99_ms"]
    return [
        (
            "summary",
            ["since", "until", "calls", "successes", "failures", "success_rate_pct"]
            + latency_headers
            + ["tokens_in", "tokens_out", "cost_usd", "photos", "cost_per_photo_usd"],
            [summary_row],
        ),
        (
            "by_call",
            ["provider", "model", "operation", "calls", "successes", "success_rate_pct"]
            + latency_headers
            + ["tokens_in", "tokens_out", "cost_usd"],
            [
                [r.provider, r.model, r.operation, r.calls, r.successes, _percent(r.success_rate)]
                + [_ms(r.latency.mean), _ms(r.latency.p50), _ms(r.latency.p95), _ms(r.latency.p99)]
                + [r.tokens_in, r.tokens_out, r.cost_usd]
                for r in dashboard.by_call
            ],
        ),
        (
            "failures",
            ["error_type", "calls"],
            [[f.error_type, f.calls] for f in dashboard.failures],
        ),
        (
            "retried_photos",
            [
                "photo_id",
                "project_id",
                "calls",
                "failures",
                "max_retries",
                "cost_usd",
                "last_call_at",
            ],
            [
                [p.photo_id, p.project_id or "", p.calls, p.failures, p.max_retries, p.cost_usd]
                + [p.last_call_at.isoformat()]
                for p in dashboard.retried_photos
            ],
        ),
        (
            "cost_by_day",
            ["day", "calls", "tokens_in", "tokens_out", "cost_usd"],
            [
                [d.day.isoformat(), d.calls, d.tokens_in, d.tokens_out, d.cost_usd]
                for d in dashboard.cost_by_day
            ],
        ),
        (
            "cost_by_project",
            ["project_id", "calls", "tokens_in", "tokens_out", "cost_usd"],
            [
                [p.project_id, p.calls, p.tokens_in, p.tokens_out, p.cost_usd]
                for p in dashboard.cost_by_project
            ],
        ),
    ]


def _json_default(value: Any) -> Any:
    if isinstance(value, Decimal | uuid.UUID):
        return str(value)  # exact: a cost keeps all its decimals
    if isinstance(value, datetime | date):
        return value.isoformat()
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


class Command(BaseCommand):
    help = (
        "Print the AI metrics dashboard's figures for a window: calls, success rate, latency "
        "percentiles per provider/model/operation, failures by type, photos that needed retries, "
        "tokens and cost per day and per project, cost per photo."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--since",
            default="24h",
            help="Start: 30m, 24h, 7d (before now) or an ISO date/datetime. Default: 24h.",
        )
        parser.add_argument(
            "--until",
            help="End: same forms; a date includes that whole day. Default: now.",
        )
        parser.add_argument("--format", choices=FORMATS, default="table")
        parser.add_argument(
            "--top", type=int, default=10, help="Projects listed by cost (default 10)."
        )
        parser.add_argument(
            "--retried", type=int, default=50, help="Retried photos listed (default 50)."
        )

    def handle(self, *args: Any, **options: Any) -> None:
        for name in ("top", "retried"):
            if options[name] < 1:
                raise CommandError(f"--{name} must be at least 1")
        try:
            window = window_parse(since=options["since"], until=options["until"])
        except WindowError as error:
            raise CommandError(f"--{error.field or 'since/--until'}: {error}") from None
        dashboard = dashboard_build(
            since=window.since,
            until=window.until,
            top_projects=options["top"],
            retried_limit=options["retried"],
        )
        if options["format"] == "json":
            document = dataclasses.asdict(dashboard)
            document["window"]["bucket"] = dashboard.window.bucket
            for totals, entry in [
                (dashboard.summary, document["summary"]),
                *zip(dashboard.by_call, document["by_call"], strict=True),
            ]:
                entry["failures"] = totals.failures
                entry["success_rate"] = totals.success_rate
            self.stdout.write(json.dumps(document, default=_json_default, indent=2))
        elif options["format"] == "csv":
            self._csv(report_sections(dashboard))
        else:
            self._tables(report_sections(dashboard))

    def _csv(self, sections: Sequence[tuple[str, list[str], list[list[Any]]]]) -> None:
        """One block per section (header row, then rows; the first column names the section),
        blocks separated by an empty line."""
        writer = csv.writer(self.stdout, lineterminator="\n")
        for i, (name, headers, rows) in enumerate(sections):
            if i:
                self.stdout.write("")
            writer.writerow(["section", *headers])
            writer.writerows([name, *row] for row in rows)

    def _tables(self, sections: Sequence[tuple[str, list[str], list[list[Any]]]]) -> None:
        for i, (name, headers, rows) in enumerate(sections):
            if i:
                self.stdout.write("")
            self.stdout.write(self.style.MIGRATE_HEADING(name.replace("_", " ")))
            if name == "summary":  # one row: print it as name/value pairs
                self.stdout.write(
                    format_table(["figure", "value"], list(zip(headers, rows[0], strict=True)))
                )
            elif rows:
                self.stdout.write(format_table(headers, rows))
            else:
                self.stdout.write("(none)")
