from __future__ import annotations

import uuid
from decimal import Decimal

from django.db import models
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _

from photos.models import Project


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
