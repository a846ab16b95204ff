"""`manage.py aimetrics_rollup`: bring the AI figures' hourly rollups up to date now."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from aimetrics.rollup import SETTLE_AFTER, aimetric_rollup, aimetric_rollup_rebuild


class Command(BaseCommand):
    help = (
        "Sum the AI call rows not rolled up yet into the hourly rollups, batch after batch, until "
        "caught up (the relay does one batch per pass). The figures are right without it: it "
        "only makes them cheaper to read."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--settle",
            type=float,
            default=SETTLE_AFTER.total_seconds(),
            help="Seconds an id must have been seen before it is rolled up, so that writers of "
            "lower ids have committed (default %(default)s). 0: no AI calls are being recorded.",
        )
        parser.add_argument(
            "--rebuild",
            action="store_true",
            help="First recompute the rollups from the rows already rolled up (after AI call "
            "rows were changed or deleted).",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        if options["settle"] < 0:
            raise CommandError("--settle must be at least 0")
        if options["rebuild"]:
            watermark = aimetric_rollup_rebuild()
            self.stdout.write(f"rebuilt the rollups up to id {watermark}")
        settle = timedelta(seconds=options["settle"])
        total = 0
        while moved := aimetric_rollup(settle=settle):
            total += moved
        self.stdout.write(f"rolled up {total} rows")
