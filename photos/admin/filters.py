"""List filters of the photo admins. Their choices cost no query over the photos table: Django's
default filter on a text column would run `SELECT DISTINCT` over every row on each page view."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from django.contrib import admin
from django.contrib.admin.options import IncorrectLookupParameters
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils.translation import gettext_lazy as _

from ai_engine.errors import ErrorCode
from ai_engine.registry import KNOWN_PROVIDERS
from ai_engine.types import ROOM_TYPES
from infra.admin_tools import ValueListFilter, parse_uuid
from photos.models import Project
from photos.rooms import room_type_label


class ProjectListFilter(admin.SimpleListFilter):
    """Filter by project without listing every project: the most recent ones, plus the one
    chosen (links from a project's page use `?project=<id>`)."""

    title = _("project")
    parameter_name = "project"
    field_name = "project_id"
    recent = 10

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        latest = Project.objects.order_by("-created_at").values_list("pk", "name")
        projects = list(latest[: self.recent])
        chosen = parse_uuid(self.value())
        if chosen and all(pk != chosen for pk, _name in projects):
            projects[:0] = Project.objects.filter(pk=chosen).values_list("pk", "name")
        return [(str(pk), name) for pk, name in projects]

    def has_output(self) -> bool:
        # A filter without output is not applied at all: a chosen value must still filter.
        return bool(self.lookup_choices) or self.value() is not None

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        value = self.value()
        if not value:
            return queryset
        project_id = parse_uuid(value)
        if project_id is None:
            raise IncorrectLookupParameters(f"not a project id: {value!r}")
        return queryset.filter(**{self.field_name: project_id})


class ErrorCodeFilter(ValueListFilter):
    title = _("error code")
    parameter_name = "error_code"
    lookup = "error_code"

    def values(self, request: HttpRequest) -> Iterable[tuple[str, str]]:
        return [(code.value, code.value) for code in ErrorCode]


class RoomTypeFilter(ValueListFilter):
    title = _("room type")
    parameter_name = "room_type"
    lookup = "room_type"

    def values(self, request: HttpRequest) -> Iterable[tuple[str, str]]:
        return [(room, room_type_label(room)) for room in ROOM_TYPES]


class ProviderFilter(ValueListFilter):
    title = _("provider")
    parameter_name = "provider"
    lookup = "analysis__provider"

    def values(self, request: HttpRequest) -> Iterable[tuple[str, str]]:
        return [(name, name) for name in KNOWN_PROVIDERS]
