"""Pieces shared by the apps' admins: a paginator that never counts a whole table, UUID search,
and list filters whose choices cost no query."""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from decimal import Decimal
from functools import cached_property
from typing import Any

from django.contrib import admin
from django.core.paginator import Paginator
from django.db.models import Model, Q, QuerySet
from django.http import HttpRequest


class CappedCountPaginator(Paginator):
    """Counts at most `cap` rows: `SELECT COUNT(*) FROM (SELECT … LIMIT cap + 1)`.

    Django's paginator runs `COUNT(*)` over every matching row, which on PostgreSQL reads the
    whole table (100k photos, 1M AI metrics) on each page view. Here the count stops after
    `cap + 1` rows, so it costs at most that many index/heap reads whatever the table size. When
    more rows match, `count` is `cap` and `capped` is True: the list offers `cap / per_page`
    pages, says "more than N" (templates/admin/<app>/pagination.html), and staff narrow it with
    filters or search. Actions on "select all" still apply to every matching row.
    """

    cap = 10_000

    @cached_property
    def _counted(self) -> int:
        object_list: Any = self.object_list
        if isinstance(object_list, QuerySet):
            # Only the primary key in the subquery: the list's annotations (correlated subqueries
            # per row, JSON extracts) would otherwise run for every counted row. No ordering:
            # PostgreSQL would sort before applying the LIMIT.
            counted = object_list.order_by().values("pk")[: self.cap + 1]
            return int(counted.count())
        return len(object_list)

    @cached_property
    def count(self) -> int:
        return min(self._counted, self.cap)

    @property
    def capped(self) -> bool:
        return self._counted > self.cap


def parse_uuid(value: str | None) -> uuid.UUID | None:
    """The UUID in `value`, or None: search terms and filter values are free text."""
    if not value:
        return None
    try:
        return uuid.UUID(value.strip())
    except ValueError:
        return None


def search_by_uuid[M: Model](
    queryset: QuerySet[M], search_term: str, fields: Sequence[str]
) -> QuerySet[M] | None:
    """When the search term is a UUID, the rows whose `fields` equal it exactly; else None.

    Admin search on a UUID column with `=id` raises on any term that is not a UUID, and
    `id__icontains` scans the table as text; an exact match uses the primary key or an index.
    """
    value = parse_uuid(search_term)
    if value is None:
        return None
    condition = Q()
    for field in fields:
        condition |= Q(**{field: value})
    return queryset.filter(condition)


class ValueListFilter(admin.SimpleListFilter):
    """A filter on one column whose choices are known without a query.

    Django's default filter for a text column lists `SELECT DISTINCT column` over the whole
    table on every page view; our values come from code (statuses, error codes, providers, room
    types). A value typed into the URL that is not in the list still filters.
    """

    lookup = ""

    def values(self, request: HttpRequest) -> Iterable[tuple[str, str]]:
        raise NotImplementedError

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        choices = list(self.values(request))
        chosen = self.value()
        if chosen and all(value != chosen for value, _label in choices):
            choices.append((chosen, chosen))
        return choices

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        value = self.value()
        if not value:
            return queryset
        return queryset.filter(**{self.lookup: value})


def save_changed_fields(obj: Model, changed: Sequence[str]) -> None:
    """Save only the fields the admin form changed (and `updated_at` when the model has one).

    A full-row `save()` would write back every column as it was when the page was read: the
    status, analysis and lease a worker stored meanwhile, or a coalesced sync request. Workers
    change rows with conditional UPDATEs; the admin must not undo them.
    """
    if not changed:
        return
    fields = list(changed)
    if any(field.name == "updated_at" for field in obj._meta.concrete_fields):
        fields.append("updated_at")
    obj.save(update_fields=fields)


def signed(value: int | Decimal) -> str:
    """+3, -1, 0; +1.25, -0.50, 0.00 — for differences."""
    if isinstance(value, Decimal):
        return f"{value:+.2f}" if value else "0.00"
    return f"{value:+d}" if value else "0"
