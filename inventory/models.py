from __future__ import annotations

import uuid
from decimal import Decimal

from django.conf import settings
from django.db import models
from django.utils import timezone
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _

from photos.models import Photo, Project
from photos.rooms import ROOM_LABEL_MAX


class InventorySnapshot(models.Model):
    """The inventory of a project at one moment, built from all its DONE photos. Kept as history."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    project = models.ForeignKey(
        Project, on_delete=models.CASCADE, related_name="inventory_snapshots"
    )
    total_items = models.PositiveIntegerField(_("total items"), default=0)
    total_volume = models.DecimalField(
        _("total volume (m³)"), max_digits=12, decimal_places=2, default=Decimal("0")
    )
    rooms = models.JSONField(_("rooms"), default=list)
    photo_count = models.PositiveIntegerField(_("photo count"), default=0)
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)

    class Meta:
        verbose_name = _("inventory snapshot")
        verbose_name_plural = _("inventory snapshots")
        ordering = ["-created_at"]
        get_latest_by = "created_at"
        indexes = [models.Index(fields=["project", "-created_at"], name="snapshot_project_created")]

    def __str__(self) -> str:
        return gettext("inventory of %(project)s at %(when)s") % {
            "project": self.project_id,
            "when": f"{self.created_at:%Y-%m-%d %H:%M}",
        }


class VolumeCatalogueEntry(models.Model):
    """The volume of one kind of item, as movers quote it. Staff edit these in the admin."""

    key = models.SlugField(_("key"), max_length=64, unique=True)
    label_en = models.CharField(_("English label"), max_length=120)
    label_fr = models.CharField(_("French label"), max_length=120)
    category = models.CharField(_("category"), max_length=40)
    volume_m3 = models.DecimalField(_("volume per unit (m³)"), max_digits=7, decimal_places=3)
    source = models.CharField(_("source"), max_length=200, blank=True)
    fragile = models.BooleanField(_("fragile"), default=False)
    dismantle = models.BooleanField(_("needs disassembly"), default=False)
    updated_at = models.DateTimeField(_("updated at"), auto_now=True)

    class Meta:
        verbose_name = _("volume catalogue entry")
        verbose_name_plural = _("volume catalogue")
        ordering = ["category", "key"]

    def __str__(self) -> str:
        return f"{self.label_en} ({self.volume_m3} m³)"


class InventoryCorrection(models.Model):
    """A staff correction of one item line of a project's inventory, kept as data of its own.

    The model's answer (`Photo.analysis`) is never edited: each sync applies the project's
    corrections, oldest first, to the lines it merged from the photos (`inventory.corrections`,
    whose docstring has the rules). `before` and `after` are the line as the inventory showed it
    when the correction was made and as it became; the provenance (provider, model, prompt
    version of the room's analyses) and the volumes are captured then too, so the accuracy
    report (`inventory.accuracy`) reads stable ground truth.
    """

    class Action(models.TextChoices):
        SET_QUANTITY = "set_quantity", _("quantity changed")
        CHANGE_KEY = "change_key", _("catalogue key changed")
        REMOVE = "remove", _("line removed")
        ADD = "add", _("line added")

    id = models.BigAutoField(primary_key=True)
    project = models.ForeignKey(
        Project, on_delete=models.CASCADE, related_name="inventory_corrections"
    )
    #: The room, as the sync groups photos: their `Photo.room_key`, or an unlabelled photo's id.
    room_group = models.CharField(_("room key"), max_length=255)
    room_label = models.CharField(_("room"), max_length=ROOM_LABEL_MAX, blank=True)
    room_type = models.CharField(_("room type"), max_length=32, blank=True)
    #: The photo whose page the correction was made from, if any.
    photo = models.ForeignKey(
        Photo, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    action = models.CharField(_("action"), max_length=16, choices=Action.choices)
    #: The line corrected (its catalogue key, or the normalised name of an item the catalogue
    #: lacks); for an added line, its catalogue key.
    line_key = models.CharField(_("line"), max_length=255)
    quantity = models.PositiveIntegerField(_("quantity"), null=True, blank=True)
    new_key = models.CharField(_("new catalogue key"), max_length=64, blank=True)
    before = models.JSONField(_("before"), null=True, blank=True)
    after = models.JSONField(_("after"), null=True, blank=True)
    provider = models.CharField(_("provider"), max_length=40, blank=True)
    model = models.CharField(_("model"), max_length=120, blank=True)
    prompt_version = models.CharField(_("prompt version"), max_length=40, blank=True)
    #: The model's volume of the line (0: a line it missed), of the room by the model alone,
    #: and of the room once this and every earlier correction applied.
    ai_volume_m3 = models.DecimalField(
        _("AI volume (m³)"), max_digits=12, decimal_places=2, default=Decimal("0")
    )
    room_ai_volume_m3 = models.DecimalField(
        _("room's AI volume (m³)"), max_digits=12, decimal_places=2, default=Decimal("0")
    )
    room_volume_m3 = models.DecimalField(
        _("room's corrected volume (m³)"), max_digits=12, decimal_places=2, default=Decimal("0")
    )
    #: Whether the latest sync applied it (a re-analysis may have removed its line).
    applies = models.BooleanField(_("applies"), default=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("by"),
    )
    created_at = models.DateTimeField(_("created at"), default=timezone.now)

    class Meta:
        verbose_name = _("inventory correction")
        verbose_name_plural = _("inventory corrections")
        ordering = ["-created_at", "-id"]
        indexes = [
            models.Index(fields=["project", "created_at"], name="correction_project_created"),
            models.Index(fields=["created_at"], name="correction_created"),
        ]

    def __str__(self) -> str:
        return gettext("%(action)s: %(line)s") % {
            "action": self.get_action_display(),
            "line": self.line_key,
        }
