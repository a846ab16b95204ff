from __future__ import annotations

import uuid
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.db import models, transaction
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _

from photos.rooms import ROOM_LABEL_MAX, ROOM_TYPE_CHOICES, room_group, room_label_key


class Project(models.Model):
    """A household's move: the photos it sent and the inventories built from them."""

    class Priority(models.TextChoices):
        """A high-priority project's photos go through their own queue, drained first, and get
        the provider's slots before normal work (which keeps AI_PRIORITY_NORMAL_SHARE)."""

        NORMAL = "normal", _("normal")
        HIGH = "high", _("high")

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="projects"
    )
    name = models.CharField(_("name"), max_length=200)
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)
    priority = models.CharField(
        _("priority"),
        max_length=10,
        choices=Priority.choices,
        default=Priority.NORMAL,
        help_text=_(
            "High: the project's photos go through their own queue, first, and get a larger "
            "share of the AI provider's capacity than a normal project's."
        ),
    )
    # Set when an inventory sync is owed and its message sent; cleared by the sync that starts
    # after it. A conditional UPDATE on it coalesces bursts of DONE photos into one sync.
    inventory_sync_requested_at = models.DateTimeField(null=True, blank=True, editable=False)

    class Meta:
        verbose_name = _("project")
        verbose_name_plural = _("projects")
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["owner", "-created_at"], name="project_owner_created")]

    def __str__(self) -> str:
        return self.name


def photo_upload_to(photo: Photo, filename: str) -> str:
    # The stored name never reuses the client's file name: it carries only our id.
    return f"photos/{photo.project_id}/{photo.id}.{photo.image_format or 'bin'}"


class Stage(models.TextChoices):
    """How far a photo's analysis is, for clients showing progress (the API's `stage`)."""

    QUEUED = "queued"
    PREPARING = "preparing"  # claimed: the image is read and prepared
    ANALYSING = "analysing"  # the provider is asked
    SAVING = "saving"  # the answer is in: volumes, the result, the inventory request
    DONE = "done"
    ERROR = "error"


#: The API's `progress` (0–100) of each stage.
STAGE_PROGRESS = {
    Stage.QUEUED: 0,
    Stage.PREPARING: 20,
    Stage.ANALYSING: 50,
    Stage.SAVING: 80,
    Stage.DONE: 100,
    Stage.ERROR: 100,
}


class Photo(models.Model):
    """One uploaded room photo and the state of its AI analysis."""

    class Status(models.TextChoices):
        PENDING = "PENDING", _("pending")
        PROCESSING = "PROCESSING", _("processing")
        DONE = "DONE", _("done")
        ERROR = "ERROR", _("error")

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    # No index of its own: the indexes below that start with project_id serve every lookup by
    # project (and the cascade), and one index fewer is less work on each status change.
    project = models.ForeignKey(
        Project, on_delete=models.CASCADE, related_name="photos", db_index=False
    )
    image = models.FileField(_("image"), upload_to=photo_upload_to, max_length=300)
    image_format = models.CharField(max_length=10, blank=True, editable=False)
    image_bytes = models.PositiveIntegerField(default=0, editable=False)
    image_width = models.PositiveIntegerField(default=0, editable=False)
    image_height = models.PositiveIntegerField(default=0, editable=False)
    sha256 = models.CharField(_("SHA-256"), max_length=64, blank=True, editable=False)

    #: The canonical key (the API turns the names clients send into it); staff see its label.
    room_type = models.CharField(
        _("room type"), max_length=32, null=True, blank=True, choices=ROOM_TYPE_CHOICES
    )
    #: The room as the household names it ("Chambre 2"). Photos of one project whose labels
    #: have the same `room_key` are views of one room; a photo without a label is a room of its
    #: own. The key is derived on save (and by the enqueue's UPDATE), never edited.
    room_label = models.CharField(_("room"), max_length=ROOM_LABEL_MAX, blank=True, default="")
    room_key = models.CharField(max_length=255, blank=True, default="", editable=False)
    status = models.CharField(
        _("status"), max_length=12, choices=Status.choices, default=Status.PENDING
    )
    analysis = models.JSONField(_("analysis"), null=True, blank=True)
    # Denormalised from `analysis` when it is stored, so inventories aggregate in SQL.
    items_count = models.PositiveIntegerField(default=0, editable=False)
    volume_m3 = models.DecimalField(
        max_digits=12, decimal_places=2, default=Decimal("0"), editable=False
    )
    error_code = models.CharField(_("error code"), max_length=20, null=True, blank=True)
    error_message = models.CharField(_("error message"), max_length=200, null=True, blank=True)
    attempts = models.PositiveIntegerField(_("attempts"), default=0)

    # Queue bookkeeping. `queued_at` is set while a message is owed for this photo (waiting, or
    # delayed for a retry); the worker's claim clears it. `lease_*` belong to the worker that
    # holds a PROCESSING photo: its result is stored only if its token still matches.
    queued_at = models.DateTimeField(null=True, blank=True, editable=False)
    #: The current run was asked with force (it never reuses an identical image's answer).
    queued_force = models.BooleanField(default=False, editable=False)
    #: Where a PROCESSING photo's worker is (Stage); the other statuses say it themselves.
    stage = models.CharField(max_length=12, blank=True, default="", editable=False)
    lease_token = models.UUIDField(null=True, blank=True, editable=False)
    lease_expires_at = models.DateTimeField(null=True, blank=True, editable=False)
    #: The worker process (its broker id, as in the broker's heartbeats) holding the lease.
    lease_owner = models.CharField(max_length=64, blank=True, editable=False)
    #: Incremented by every enqueue: provider answers paid for in this run are reused, never
    #: bought twice, when a message is redelivered after a crash.
    run = models.PositiveIntegerField(default=0, editable=False)

    processed_at = models.DateTimeField(_("processed at"), null=True, blank=True)
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)
    updated_at = models.DateTimeField(_("updated at"), auto_now=True)

    class Meta:
        verbose_name = _("photo")
        verbose_name_plural = _("photos")
        ordering = ["-created_at"]
        indexes = [
            # Covering: the inventory sync's GROUP BY reads the index alone (an index-only scan),
            # a small fraction of the pages of the table, whose rows carry the analysis JSON.
            models.Index(
                fields=["project", "status"],
                include=["room_type", "room_key", "room_label", "items_count", "volume_m3", "id"],
                name="photo_project_status_cover",
            ),
            models.Index(fields=["project", "-created_at"], name="photo_project_created"),
            models.Index(fields=["status", "updated_at"], name="photo_status_updated"),
            # The staff list's default order (newest first, the primary key as tie-breaker):
            # without it every page of the admin sorts the whole table.
            models.Index(fields=["-created_at", "-id"], name="photo_created"),
        ]

    def __str__(self) -> str:
        return gettext("photo %(id)s") % {"id": self.id}

    def save(self, *args: Any, **kwargs: Any) -> None:
        self.room_key = room_label_key(self.room_label)
        update_fields = kwargs.get("update_fields")
        relabelled = update_fields is None or "room_label" in update_fields
        if update_fields is not None and "room_label" in update_fields:
            kwargs["update_fields"] = {*update_fields, "room_key"}
        if self._state.adding or not relabelled:
            super().save(*args, **kwargs)
            return
        with transaction.atomic():
            super().save(*args, **kwargs)
            # The item rows carry the room the inventory groups them by (PhotoItem.room).
            PhotoItem.objects.filter(photo=self).update(room=self.room_group)

    @property
    def room_group(self) -> str:
        """The inventory's room of this photo: its label's key, or, unlabelled, its own id."""
        return room_group(room_key=self.room_key, photo_id=self.pk)

    @property
    def job_id(self) -> str:
        return f"photo-{self.id}"

    @property
    def current_stage(self) -> Stage:
        """The API's `stage`: the worker's while PROCESSING, else what the status says."""
        if self.status == Photo.Status.PROCESSING:
            return Stage(self.stage) if self.stage in Stage.values else Stage.PREPARING
        if self.status == Photo.Status.DONE:
            # A forced re-analysis owed: the old result stays readable until the new one.
            return Stage.DONE
        return Stage.ERROR if self.status == Photo.Status.ERROR else Stage.QUEUED


class PhotoItem(models.Model):
    """One item line of a DONE photo, as the inventory sync reads it (photos/items.py).

    Written with the DONE, replaced by the next DONE, deleted when a re-analysis takes the photo
    out of DONE (photos/lifecycle.py): a photo has rows only while it is DONE, so the sync reads
    them without looking at the photos. Already merged within the photo: the items of one line
    are one row, its quantity their sum. A line is a catalogue key (the item's key, when the
    analysis priced it from the catalogue: `volumeSource`) or, for an item the catalogue
    lacked, its normalised name (`by_name`).
    """

    id = models.BigAutoField(primary_key=True)
    photo = models.ForeignKey(Photo, on_delete=models.CASCADE, related_name="items")
    #: The photo's project (it never changes): the sync reads a project's rows from one index.
    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="+", db_index=False)
    #: The photo's `room_group`, kept with every change of its label (Photo.save, the enqueue).
    room = models.TextField()
    line_key = models.TextField()
    by_name = models.BooleanField()
    # As the model gave them (the smallest of the line's, as the sync takes them); null: none.
    key = models.TextField(null=True)
    name = models.TextField(null=True)
    category = models.TextField(null=True)
    quantity = models.IntegerField()
    #: The analysis' volume of the line's items in this photo (the model's, where the catalogue
    #: lacked them); the sync prices catalogue lines from the catalogue as it is then.
    volume_m3 = models.DecimalField(max_digits=12, decimal_places=3)
    fragile = models.BooleanField()
    dismantle = models.BooleanField()

    class Meta:
        indexes = [
            # Covering, in the GROUP BY's order: the sync aggregates a project's rows as the
            # index gives them, without reading the table or sorting.
            models.Index(
                fields=["project", "room", "line_key", "by_name"],
                include=[
                    "photo",
                    "key",
                    "name",
                    "category",
                    "quantity",
                    "volume_m3",
                    "fragile",
                    "dismantle",
                ],
                name="photoitem_project_room_line",
            )
        ]

    def __str__(self) -> str:
        return f"{self.quantity} × {self.line_key} in photo {self.photo_id}"


class ProviderAnswer(models.Model):
    """A provider answer paid for in one run of a photo's analysis.

    Kept so that a message redelivered after a crash (between the provider's answer and the DONE
    write) reuses the answer instead of buying it again. A forced re-analysis is a new run, and
    pays again as it should. The metrics (aimetrics) record what each call cost; this table
    records only what the pipeline may reuse.
    """

    id = models.BigAutoField(primary_key=True)
    photo = models.ForeignKey(Photo, on_delete=models.CASCADE, related_name="answers")
    run = models.PositiveIntegerField()
    #: The engine's operation: detect_room or analyze_photo.
    operation = models.CharField(max_length=40)
    prompt_version = models.CharField(max_length=40)
    answer = models.JSONField()
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["photo", "run", "operation"], name="provider_answer_once_per_run"
            )
        ]

    def __str__(self) -> str:
        return f"{self.operation} of photo {self.photo_id}, run {self.run}"
