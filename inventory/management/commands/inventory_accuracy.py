"""`manage.py inventory_accuracy`: how good the model is, from the staff's corrections."""

from __future__ import annotations

import dataclasses
import json
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from aimetrics.windows import WindowError, window_parse
from infra.progress import format_table
from inventory.accuracy import inventory_accuracy

HEADERS = [
    "provider",
    "model",
    "prompt_version",
    "added",
    "removed",
    "quantity_changed",
    "key_changed",
    "rooms",
    "emptied_rooms",
    "volume_error_p50_pct",
    "volume_error_p90_pct",
]


def _percent(value: float | None) -> str:
    return "" if value is None else f"{value:.1f}"


class Command(BaseCommand):
    help = (
        "Print, per provider, model and prompt version, what staff corrected in the inventories "
        "over a window: lines added (missed items), removed (false items), quantities and keys "
        "changed, and the volume error of the corrected rooms (P50/P90, percent)."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--since",
            default="30d",
            help="Start: 30m, 24h, 7d (before now) or an ISO date/datetime. Default: 30d.",
        )
        parser.add_argument(
            "--until", help="End: same forms; a date includes that whole day. Default: now."
        )
        parser.add_argument("--json", action="store_true", help="One JSON document.")

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            window = window_parse(since=options["since"], until=options["until"])
        except WindowError as error:
            raise CommandError(f"--{error.field or 'since/--until'}: {error}") from None
        report = inventory_accuracy(since=window.since, until=window.until)
        if options["json"]:
            document = {
                "since": window.since.isoformat(),
                "until": window.until.isoformat(),
                "rows": [dataclasses.asdict(row) for row in report],
            }
            self.stdout.write(json.dumps(document, indent=2))
            return
        self.stdout.write(f"from {window.since.isoformat()} to {window.until.isoformat()}")
        if not report:
            self.stdout.write("(no corrections in this window)")
            return
        rows = [
            [row.provider, row.model, row.prompt_version, row.added, row.removed]
            + [row.quantity_changed, row.key_changed, row.rooms, row.emptied_rooms]
            + [_percent(row.volume_error_p50), _percent(row.volume_error_p90)]
            for row in report
        ]
        self.stdout.write(format_table(HEADERS, rows))
