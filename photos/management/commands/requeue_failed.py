"""`manage.py requeue_failed`: re-enqueue ERROR photos."""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from ai_engine.errors import ErrorCode
from photos.models import Photo
from photos.services.queueing import EnqueueStatus, photo_enqueue

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
    help = "Re-enqueue photos in ERROR (all, or filtered by error code, project, age)."

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

    def handle(self, *args: Any, **options: Any) -> None:
        photos = Photo.objects.filter(status=Photo.Status.ERROR).order_by("updated_at")
        if options["error_code"]:
            photos = photos.filter(error_code=options["error_code"])
        if options["project"]:
            try:
                project_id = uuid.UUID(options["project"])
            except ValueError:
                raise CommandError(
                    f"--project: {options['project']!r} is not a project id"
                ) from None
            photos = photos.filter(project_id=project_id)
        if options["since"]:
            photos = photos.filter(updated_at__gte=parse_since(options["since"]))
        if options["limit"] is not None:
            if options["limit"] < 1:
                raise CommandError("--limit must be at least 1")
            photos = photos[: options["limit"]]

        enqueued = skipped = 0
        for photo in photos.iterator():
            if options["dry_run"]:
                self.stdout.write(f"would re-enqueue {photo.pk} ({photo.error_code})")
                enqueued += 1
                continue
            result = photo_enqueue(photo=photo)
            if result.status == EnqueueStatus.ENQUEUED:
                enqueued += 1
                self.stdout.write(f"re-enqueued {photo.pk} ({photo.error_code})")
            else:
                skipped += 1
                self.stdout.write(f"skipped {photo.pk}: {result.status}")
        verb = "would re-enqueue" if options["dry_run"] else "re-enqueued"
        self.stdout.write(self.style.SUCCESS(f"{verb} {enqueued} photo(s), skipped {skipped}"))
