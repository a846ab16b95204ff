"""Staff's view of every endpoint, delivery and attempt. Read-only; changes go through actions
that call the services. Secrets are never shown: no field, list column or search reads them."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.db.models import QuerySet
from django.http import HttpRequest
from django.urls import reverse
from django.utils.html import format_html
from django.utils.translation import gettext_lazy as _
from django.utils.translation import ngettext

from infra.admin_tools import CappedCountPaginator, search_by_uuid
from webhooks.delivery import webhook_resend
from webhooks.models import WebhookAttempt, WebhookDelivery, WebhookEndpoint
from webhooks.services import endpoint_disable, endpoint_enable

ENDPOINT_FIELDS = (
    "id",
    "owner",
    "url",
    "description",
    "events",
    "enabled",
    "disabled_reason",
    "failing_since",
    "previous_secret_expires_at",
    "created_at",
    "updated_at",
)


class _ReadOnly[M: Any](admin.ModelAdmin[M]):
    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(WebhookEndpoint)
class WebhookEndpointAdmin(_ReadOnly[WebhookEndpoint]):
    list_display = ["url", "owner", "enabled", "disabled_reason", "failing_since", "created_at"]
    list_filter = ["enabled", ("created_at", admin.DateFieldListFilter)]
    list_select_related = ["owner"]
    search_fields = ["url", "owner__username"]
    search_help_text = _("An endpoint id (exact), part of its URL, or its owner's username.")
    fields = readonly_fields = ENDPOINT_FIELDS
    actions = ["enable", "disable"]

    def get_search_results(
        self, request: HttpRequest, queryset: QuerySet[WebhookEndpoint], search_term: str
    ) -> tuple[QuerySet[WebhookEndpoint], bool]:
        exact = search_by_uuid(queryset, search_term, ["id"])
        if exact is not None:
            return exact, False
        return super().get_search_results(request, queryset, search_term)

    @admin.action(description=_("Enable (and send what they are owed)"))
    def enable(self, request: HttpRequest, queryset: QuerySet[WebhookEndpoint]) -> None:
        count = endpoint_enable(endpoint_ids=list(queryset.values_list("id", flat=True)))
        self.message_user(
            request,
            ngettext("%(count)d endpoint enabled.", "%(count)d endpoints enabled.", count)
            % {"count": count},
        )

    @admin.action(description=_("Disable"))
    def disable(self, request: HttpRequest, queryset: QuerySet[WebhookEndpoint]) -> None:
        reason = f"Disabled by staff ({request.user.get_username()})."
        count = endpoint_disable(
            endpoint_ids=list(queryset.values_list("id", flat=True)), reason=reason
        )
        self.message_user(
            request,
            ngettext("%(count)d endpoint disabled.", "%(count)d endpoints disabled.", count)
            % {"count": count},
        )


class AttemptInline(admin.TabularInline[WebhookAttempt, WebhookDelivery]):
    model = WebhookAttempt
    fields = readonly_fields = (
        "number",
        "created_at",
        "status_code",
        "latency_ms",
        "error",
        "response_excerpt",
        "next_retry_at",
    )
    extra = 0
    can_delete = False
    ordering = ["-number"]
    max_num = 0

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(WebhookDelivery)
class WebhookDeliveryAdmin(_ReadOnly[WebhookDelivery]):
    list_display = [
        "webhook_id",
        "endpoint_url",
        "event_type",
        "status",
        "attempts",
        "last_status_code",
        "next_attempt_at",
        "created_at",
    ]
    list_filter = ["status", "event_type", ("created_at", admin.DateFieldListFilter)]
    list_select_related = ["endpoint"]
    search_fields = ["endpoint__url"]
    search_help_text = _("A delivery or endpoint id (exact), or part of the endpoint's URL.")
    paginator = CappedCountPaginator
    show_full_result_count = False
    fields = readonly_fields = (
        "webhook_id",
        "endpoint_link",
        "event_type",
        "status",
        "attempts",
        "next_attempt_at",
        "last_status_code",
        "last_error",
        "delivered_at",
        "created_at",
        "body",
    )
    inlines = [AttemptInline]
    actions = ["resend"]

    def get_search_results(
        self, request: HttpRequest, queryset: QuerySet[WebhookDelivery], search_term: str
    ) -> tuple[QuerySet[WebhookDelivery], bool]:
        term = search_term.strip()
        exact = search_by_uuid(queryset, term.removeprefix("msg_"), ["id", "endpoint_id"])
        if exact is not None:
            return exact, False
        return super().get_search_results(request, queryset, search_term)

    @admin.display(description=_("endpoint"), ordering="endpoint__url")
    def endpoint_url(self, delivery: WebhookDelivery) -> str:
        return delivery.endpoint.url

    @admin.display(description=_("endpoint"))
    def endpoint_link(self, delivery: WebhookDelivery) -> str:
        url = reverse("admin:webhooks_webhookendpoint_change", args=[delivery.endpoint_id])
        return format_html('<a href="{}">{}</a>', url, delivery.endpoint.url)

    @admin.action(description=_("Re-send (same webhook-id, fresh retries)"))
    def resend(self, request: HttpRequest, queryset: QuerySet[WebhookDelivery]) -> None:
        count = webhook_resend(delivery_ids=list(queryset.values_list("id", flat=True)[:1000]))
        self.message_user(
            request,
            ngettext("%(count)d delivery re-sent.", "%(count)d deliveries re-sent.", count)
            % {"count": count},
        )


@admin.register(WebhookAttempt)
class WebhookAttemptAdmin(_ReadOnly[WebhookAttempt]):
    list_display = [
        "created_at",
        "delivery",
        "endpoint",
        "number",
        "status_code",
        "latency_ms",
        "error",
        "next_retry_at",
    ]
    list_filter = ["status_code", ("created_at", admin.DateFieldListFilter)]
    list_select_related = ["endpoint", "delivery"]
    search_fields = ["endpoint__url"]
    paginator = CappedCountPaginator
    show_full_result_count = False
    fields = readonly_fields = (
        "delivery",
        "endpoint",
        "number",
        "status_code",
        "latency_ms",
        "response_excerpt",
        "error",
        "next_retry_at",
        "created_at",
    )

    def get_search_results(
        self, request: HttpRequest, queryset: QuerySet[WebhookAttempt], search_term: str
    ) -> tuple[QuerySet[WebhookAttempt], bool]:
        exact = search_by_uuid(
            queryset, search_term.strip().removeprefix("msg_"), ["delivery_id", "endpoint_id"]
        )
        if exact is not None:
            return exact, False
        return super().get_search_results(request, queryset, search_term)
