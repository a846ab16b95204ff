"""`manage.py requeue_stuck`: send again the messages of photos that are owed one and have none."""

from __future__ import annotations

from collections import Counter
from datetime import timedelta
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from infra.broker import broker_redis
from infra.progress import ProgressBar, format_table
from photos.services.relay import photo_relay, photos_stuck


class Command(BaseCommand):
    help = (
        "Re-enqueue stuck photos: PENDING photos owed a message that is nowhere in Redis (after a "
        "Redis restart, or a broker outage at enqueue time) and PROCESSING photos whose lease "
        "expired. Safe from cron and concurrently with itself: each photo is re-sent once."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--grace",
            type=int,
            help="Seconds a PENDING photo may wait for its message before it counts as stuck "
            "(default: PHOTO_RELAY_GRACE_SECONDS).",
        )
        parser.add_argument("--limit", type=int, help="At most this many photos.")
        parser.add_argument("--dry-run", action="store_true", help="List, change nothing.")

    def handle(self, *args: Any, **options: Any) -> None:
        if options["limit"] is not None and options["limit"] < 1:
            raise CommandError("--limit must be at least 1")
        if options["grace"] is not None and options["grace"] < 0:
            raise CommandError("--grace must be 0 or more")
        grace = timedelta(seconds=options["grace"]) if options["grace"] is not None else None
        stuck = photos_stuck(client=broker_redis(), grace=grace, limit=options["limit"])
        progress = ProgressBar(self.stderr._out, len(stuck))
        found: Counter[str] = Counter()
        sent: Counter[str] = Counter()
        for photo in stuck:
            found[photo.status] += 1
            if options["dry_run"]:
                self.stdout.write(f"would re-enqueue {photo.id} ({photo.status})")
                sent[photo.status] += 1
            elif photo_relay(photo=photo):
                self.stdout.write(f"re-enqueued {photo.id} ({photo.status})")
                sent[photo.status] += 1
            else:
                self.stdout.write(f"skipped {photo.id}: it moved on or another relay took it")
            progress.advance()
        verb = "would re-enqueue" if options["dry_run"] else "re-enqueued"
        if found:
            rows = [[s, found[s], sent[s], found[s] - sent[s]] for s in sorted(found)]
            self.stdout.write(format_table(["status", "stuck", verb, "skipped"], rows))
        total_sent = sum(sent.values())
        self.stdout.write(
            self.style.SUCCESS(
                f"{verb} {total_sent} stuck photo(s), skipped {sum(found.values()) - total_sent}"
            )
        )
