"""`manage.py requeue_failed`: re-enqueue ERROR photos."""

from __future__ import annotations

import re
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from ai_engine.errors import RETRYABLE_CODES, ErrorCode
from infra.progress import ProgressBar, format_table, parse_id_option
from photos.lifecycle import EnqueueStatus, photo_enqueue
from photos.models import Photo

_RELATIVE = re.compile(r"^(\d+)([mhd])$")


def parse_since(value: str) -> datetime:
    """`30m`, `24h`, `7d`, or an ISO date/datetime (UTC when no zone is given)."""
    match = _RELATIVE.match(value)
    if match:
        amount, unit = int(match[1]), match[2]
        delta = {
            "m": timedelta(minutes=amount),
            "h": timedelta(hours=amount),
            "d": timedelta(days=amount),
        }
        return timezone.now() - delta[unit]
    try:
        parsed = parse_datetime(value) or parse_datetime(f"{value}T00:00:00")
    except ValueError:
        parsed = None
    if parsed is None:
        raise CommandError(f"--since: {value!r} is neither 30m/24h/7d nor an ISO date")
    return parsed if timezone.is_aware(parsed) else timezone.make_aware(parsed, UTC)


class Command(BaseCommand):
    help = (
        "Re-enqueue photos in ERROR (all, or filtered by error code, project, age). Photos whose "
        "error is not retryable (BAD_INPUT, UNKNOWN) are left alone unless --force is given or "
        "--error-code names their code."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--error-code", choices=[code.value for code in ErrorCode])
        parser.add_argument("--project", help="Only this project's photos (its id).")
        parser.add_argument(
            "--since", help="Only photos that failed since: 30m, 24h, 7d or ISO date."
        )
        parser.add_argument("--limit", type=int, help="At most this many photos.")
        parser.add_argument(
            "--dry-run", action="store_true", help="List what would be re-enqueued."
        )
        parser.add_argument(
            "--force",
            action="store_true",
            help="Also re-enqueue photos whose error is not retryable (BAD_INPUT, UNKNOWN).",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        photos = Photo.objects.filter(status=Photo.Status.ERROR).order_by("updated_at")
        if options["error_code"]:
            photos = photos.filter(error_code=options["error_code"])
        elif not options["force"]:
            photos = photos.filter(error_code__in=[code.value for code in RETRYABLE_CODES])
        if options["project"]:
            project_id = parse_id_option(options["project"], option="--project", what="project")
            photos = photos.filter(project_id=project_id)
        if options["since"]:
            photos = photos.filter(updated_at__gte=parse_since(options["since"]))
        if options["limit"] is not None:
            if options["limit"] < 1:
                raise CommandError("--limit must be at least 1")
            photos = photos[: options["limit"]]

        selected = list(photos.only("id", "error_code", "status", "queued_at"))
        progress = ProgressBar(self.stderr._out, len(selected))
        found: Counter[str] = Counter()
        done: Counter[str] = Counter()
        for photo in selected:
            code = photo.error_code or "?"
            found[code] += 1
            if options["dry_run"]:
                self.stdout.write(f"would re-enqueue {photo.pk} ({code})")
                done[code] += 1
            elif (result := photo_enqueue(photo=photo)).status == EnqueueStatus.ENQUEUED:
                self.stdout.write(f"re-enqueued {photo.pk} ({code})")
                done[code] += 1
            else:
                self.stdout.write(f"skipped {photo.pk}: {result.status}")
            progress.advance()

        verb = "would re-enqueue" if options["dry_run"] else "re-enqueued"
        if found:
            rows = [
                [code, found[code], done[code], found[code] - done[code]] for code in sorted(found)
            ]
            total = sum(found.values()), sum(done.values())
            rows.append(["total", total[0], total[1], total[0] - total[1]])
            self.stdout.write(format_table(["error code", "found", verb, "skipped"], rows))
        enqueued = sum(done.values())
        self.stdout.write(
            self.style.SUCCESS(
                f"{verb} {enqueued} photo(s), skipped {sum(found.values()) - enqueued}"
            )
        )
