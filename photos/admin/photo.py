"""The photo admin: the list (thumbnail, status, room type, provider), a photo's page, the
actions that queue photos again and the staff-only image views.

Its actions are its own (re-run, force re-analysis) and those other apps registered through
`photos.admin.actions.register_photo_action`: inventory adds "Sync the project's inventory"
(inventory/admin/__init__.py), since photos never imports inventory.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from decimal import Decimal
from typing import Any

from django.contrib import admin
from django.contrib.admin.views.main import ChangeList
from django.db.models import QuerySet
from django.db.models.fields.json import KeyTextTransform
from django.http import FileResponse, HttpRequest, HttpResponse
from django.urls import URLPattern, path, reverse
from django.utils.formats import date_format, number_format
from django.utils.html import format_html
from django.utils.timezone import localtime
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _

from infra.admin_tools import CappedCountPaginator, save_changed_fields, search_by_uuid
from photos.admin.actions import PhotoAction, enqueue_selected, registered_photo_actions
from photos.admin.detail import photo_detail_context
from photos.admin.filters import (
    ErrorCodeFilter,
    ProjectListFilter,
    ProviderFilter,
    RoomTypeFilter,
)
from photos.admin.views import photo_image_view, photo_thumbnail_view
from photos.models import Photo
from photos.rooms import room_type_label

STATUS_COLOURS: dict[str, str] = {
    Photo.Status.PENDING: "#8a6d00",
    Photo.Status.PROCESSING: "#1f5fbf",
    Photo.Status.DONE: "#1e7b34",
    Photo.Status.ERROR: "#b3261e",
}


def status_badge(status: str) -> str:
    label = Photo.Status(status).label if status in Photo.Status.values else status
    return format_html(
        '<strong style="color: {}">{}</strong>', STATUS_COLOURS.get(status, "inherit"), label
    )


def _when(moment: datetime) -> str:
    return date_format(localtime(moment), "DATETIME_FORMAT")


def _number(value: Any) -> str:
    """A number as the active language writes it (2.5, or 2,5 in French); anything else as is."""
    if isinstance(value, int | float | Decimal) and not isinstance(value, bool):
        return number_format(value)
    return str(value)


class PhotoChangeList(ChangeList):
    def get_queryset(self, request: HttpRequest, exclude_parameters: Any = None) -> QuerySet[Any]:
        # The list shows provider and model (annotated); the whole analysis document of each of
        # the page's rows is not worth reading.
        return super().get_queryset(request, exclude_parameters).defer("analysis")


@admin.register(Photo)
class PhotoAdmin(admin.ModelAdmin[Photo]):
    """Photos, as staff inspect and re-run them. Status, analysis and errors are read-only."""

    list_display = [
        "thumbnail",
        "short_id",
        "project_name",
        "owner",
        "coloured_status",
        "room",
        "error_code",
        "attempts",
        "provider_model",
        "processed_at",
    ]
    list_display_links = ["thumbnail", "short_id"]
    list_filter = [
        "status",
        ErrorCodeFilter,
        RoomTypeFilter,
        ProviderFilter,
        ProjectListFilter,
        ("created_at", admin.DateFieldListFilter),
    ]
    list_select_related = ["project", "project__owner"]
    list_per_page = 50
    search_fields = ["project__name", "project__owner__username"]
    search_help_text = _(
        "A photo or project id (exact), or part of a project name or owner username."
    )
    paginator = CappedCountPaginator
    show_full_result_count = False
    show_facets = admin.ShowFacets.NEVER  # facet counts would COUNT the table once per choice
    fieldsets = [
        (
            None,
            {
                "fields": [
                    "photo_id",
                    "project_link",
                    "owner",
                    "coloured_status",
                    "room_type",
                    "room_label",
                    "created_at",
                    "updated_at",
                ]
            },
        ),
        (_("Image"), {"fields": ["image_preview", "image_details", "sha256"]}),
        (
            _("Analysis"),
            {
                "fields": [
                    "attempts",
                    "processed_at",
                    "provider_model",
                    "analysis_summary",
                    "error_code",
                    "error_message",
                    "queue_state",
                ]
            },
        ),
    ]
    # Everything but the room type and label: status, analysis and errors change only through
    # the pipeline and the actions below. The room type is kept by the next analysis.
    readonly_fields = [
        "photo_id",
        "project_link",
        "owner",
        "coloured_status",
        "created_at",
        "updated_at",
        "image_preview",
        "image_details",
        "sha256",
        "attempts",
        "processed_at",
        "provider_model",
        "analysis_summary",
        "error_code",
        "error_message",
        "queue_state",
    ]

    # A property, not the usual list (hence the ignore): inventory registers its action after
    # this admin is instantiated, so the list is read each time a page or a system check asks.
    @property
    def actions(self) -> list[PhotoAction | str]:  # type: ignore[override]
        """Ours, then those other apps registered (inventory's `sync_project_inventory`)."""
        return ["rerun_analysis", "force_reanalysis", *registered_photo_actions()]

    def get_queryset(self, request: HttpRequest) -> QuerySet[Photo]:
        return (
            super()
            .get_queryset(request)
            .annotate(
                ai_provider=KeyTextTransform("provider", "analysis"),
                ai_model=KeyTextTransform("model", "analysis"),
            )
        )

    def get_changelist(self, request: HttpRequest, **kwargs: Any) -> type[ChangeList]:
        return PhotoChangeList

    def get_search_results(
        self, request: HttpRequest, queryset: QuerySet[Photo], search_term: str
    ) -> tuple[QuerySet[Photo], bool]:
        by_id = search_by_uuid(queryset, search_term, ["pk", "project_id"])
        if by_id is not None:
            return by_id, False
        return super().get_search_results(request, queryset, search_term)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # uploads go through the API, which validates and fingerprints the image

    def save_model(self, request: HttpRequest, obj: Photo, form: Any, change: bool) -> None:
        save_changed_fields(obj, form.changed_data)

    # --- columns and fields ---

    @admin.display(description=_("thumbnail"))
    def thumbnail(self, photo: Photo) -> str:
        return format_html(
            '<img src="{}" alt="" loading="lazy" style="max-width: 64px; max-height: 64px">',
            self._thumbnail_url(photo, "small"),
        )

    @admin.display(description=_("photo"), ordering="pk")
    def short_id(self, photo: Photo) -> str:
        return format_html('<span title="{}">{}</span>', photo.pk, str(photo.pk)[:8])

    @admin.display(description=_("ID"))
    def photo_id(self, photo: Photo) -> str:
        return str(photo.pk)

    @admin.display(description=_("project"), ordering="project__name")
    def project_name(self, photo: Photo) -> str:
        return photo.project.name

    @admin.display(description=_("project"))
    def project_link(self, photo: Photo) -> str:
        return format_html(
            '<a href="{}">{}</a>',
            reverse(f"{self.admin_site.name}:photos_project_change", args=[photo.project_id]),
            photo.project.name,
        )

    @admin.display(description=_("queue"))
    def queue_state(self, photo: Photo) -> str:
        if photo.queued_at is not None:
            return gettext("queued since %(when)s") % {"when": _when(photo.queued_at)}
        if photo.status == Photo.Status.PROCESSING and photo.lease_expires_at is not None:
            return gettext("held by a worker until %(when)s") % {
                "when": _when(photo.lease_expires_at)
            }
        return self.get_empty_value_display()

    @admin.display(description=_("owner"), ordering="project__owner__username")
    def owner(self, photo: Photo) -> str:
        return photo.project.owner.get_username()

    @admin.display(description=_("status"), ordering="status")
    def coloured_status(self, photo: Photo) -> str:
        return status_badge(photo.status)

    @admin.display(description=_("room type"), ordering="room_type")
    def room(self, photo: Photo) -> str:
        return room_type_label(photo.room_type) or self.get_empty_value_display()

    @admin.display(description=_("provider / model"), ordering="ai_provider")
    def provider_model(self, photo: Photo) -> str:
        provider = getattr(photo, "ai_provider", None)
        model = getattr(photo, "ai_model", None)
        if not provider and not model:
            return self.get_empty_value_display()
        return f"{provider or '?'} / {model or '?'}"

    @admin.display(description=_("image"))
    def image_preview(self, photo: Photo) -> str:
        return format_html(
            '<a href="{}"><img src="{}" alt="" style="max-width: 100%; max-height: 480px"></a>'
            '<br><a href="{}">{}</a>',
            self._image_url(photo),
            self._thumbnail_url(photo, "large"),
            self._image_url(photo),
            gettext("Open the original"),
        )

    @admin.display(description=_("format and size"))
    def image_details(self, photo: Photo) -> str:
        return gettext("%(format)s, %(width)d × %(height)d px, %(kb)d KiB") % {
            "format": (photo.image_format or "?").upper(),
            "width": photo.image_width,
            "height": photo.image_height,
            "kb": round(photo.image_bytes / 1024),
        }

    @admin.display(description=_("analysis"))
    def analysis_summary(self, photo: Photo) -> str:
        analysis = photo.analysis
        if not isinstance(analysis, dict):
            return self.get_empty_value_display()
        totals = analysis.get("totals") or {}
        return gettext(
            "%(items)s items, %(volume)s m³, confidence %(confidence)s, prompt %(prompt)s"
        ) % {
            "items": _number(totals.get("items", "?")),
            "volume": _number(totals.get("volume_m3", "?")),
            "confidence": _number(analysis.get("confidence", "?")),
            "prompt": analysis.get("promptVersion", "?"),
        }

    # --- the detail page's tables (templates/admin/photos/photo/change_form.html) ---

    def render_change_form(
        self,
        request: HttpRequest,
        context: dict[str, Any],
        add: bool = False,
        change: bool = False,
        form_url: str = "",
        obj: Photo | None = None,
    ) -> HttpResponse:
        if obj is not None:
            context.update(photo_detail_context(obj))
        return super().render_change_form(request, context, add, change, form_url, obj)

    # --- actions ---

    @admin.action(
        description=_("Re-run analysis (ERROR or PENDING photos)"), permissions=["change"]
    )
    def rerun_analysis(self, request: HttpRequest, queryset: QuerySet[Photo]) -> None:
        enqueue_selected(
            queryset,
            statuses=[Photo.Status.ERROR, Photo.Status.PENDING],
            wrong_status=gettext("not ERROR or PENDING"),
            force=False,
        ).report(self, request)

    @admin.action(description=_("Force re-analysis (DONE photos)"), permissions=["change"])
    def force_reanalysis(self, request: HttpRequest, queryset: QuerySet[Photo]) -> None:
        enqueue_selected(
            queryset,
            statuses=[Photo.Status.DONE],
            wrong_status=gettext("not DONE"),
            force=True,
        ).report(self, request)

    # --- image views ---

    def get_urls(self) -> list[URLPattern]:
        info = self.opts.app_label, self.opts.model_name
        wrap = self.admin_site.admin_view
        return [
            path(
                "<uuid:photo_id>/image/",
                wrap(self.image_view, cacheable=True),
                name="{}_{}_image".format(*info),
            ),
            path(
                "<uuid:photo_id>/thumbnail/<slug:size>/",
                wrap(self.thumbnail_view, cacheable=True),
                name="{}_{}_thumbnail".format(*info),
            ),
            *super().get_urls(),
        ]

    def image_view(self, request: HttpRequest, photo_id: uuid.UUID) -> FileResponse:
        return photo_image_view(request, photo_id, model_admin=self)

    def thumbnail_view(self, request: HttpRequest, photo_id: uuid.UUID, size: str) -> HttpResponse:
        return photo_thumbnail_view(request, photo_id, size, model_admin=self)

    def _image_url(self, photo: Photo) -> str:
        return reverse(f"{self.admin_site.name}:photos_photo_image", args=[photo.pk])

    def _thumbnail_url(self, photo: Photo, size: str) -> str:
        return reverse(f"{self.admin_site.name}:photos_photo_thumbnail", args=[photo.pk, size])
