"""`manage.py sync_inventory --project ID | --all`: write fresh inventory snapshots now."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from infra.progress import ProgressBar, parse_id_option
from inventory.services import inventory_request_sync, inventory_sync
from photos.models import Photo, Project


class Command(BaseCommand):
    help = (
        "Rebuild inventory snapshots from the projects' DONE photos, in this process (or, with "
        "--enqueue, through the inventory-sync queue)."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        target = parser.add_mutually_exclusive_group(required=True)
        target.add_argument("--project", help="One project's id.")
        target.add_argument(
            "--all", action="store_true", help="Every project with at least one DONE photo."
        )
        parser.add_argument(
            "--enqueue", action="store_true", help="Queue the syncs instead of running them here."
        )
        parser.add_argument("--dry-run", action="store_true", help="List the projects, do nothing.")

    def handle(self, *args: Any, **options: Any) -> None:
        if options["project"]:
            project_id = parse_id_option(options["project"], option="--project", what="project")
            if not Project.objects.filter(pk=project_id).exists():
                raise CommandError(f"--project: no project {project_id}")
            project_ids = [project_id]
        else:
            project_ids = list(
                Photo.objects.filter(status=Photo.Status.DONE)
                .values_list("project_id", flat=True)
                .distinct()
                .order_by("project_id")
            )
        progress = ProgressBar(self.stderr._out, len(project_ids))
        for project_id in project_ids:
            if options["dry_run"]:
                self.stdout.write(f"would sync {project_id}")
            elif options["enqueue"]:
                sent = inventory_request_sync(project_id=project_id, delay_ms=0)
                self.stdout.write(f"{'queued' if sent else 'already queued'}: {project_id}")
            else:
                snapshot = inventory_sync(project_id=project_id)
                if snapshot is not None:
                    self.stdout.write(
                        f"synced {project_id}: {snapshot.photo_count} photo(s), "
                        f"{snapshot.total_items} item(s), {snapshot.total_volume} m³"
                    )
            progress.advance()
        self.stdout.write(self.style.SUCCESS(f"{len(project_ids)} project(s)"))
