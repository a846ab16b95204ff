"""Webhook endpoints, the deliveries owed to them (the outbox) and the log of every attempt."""

from __future__ import annotations

import uuid

from django.conf import settings
from django.db import models
from django.utils.translation import gettext_lazy as _

#: The events a client may subscribe to; `ping` is sent only by the test endpoint.
EVENTS = ("photo.done", "photo.error", "inventory.updated")
PING = "ping"


class WebhookEndpoint(models.Model):
    """A URL of one user's that receives signed events (Standard Webhooks)."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="webhook_endpoints"
    )
    url = models.CharField(_("URL"), max_length=2000)
    description = models.CharField(_("description"), max_length=500, blank=True)
    #: Subscribed event types (a subset of EVENTS).
    events = models.JSONField(_("events"), default=list)
    enabled = models.BooleanField(_("enabled"), default=True)
    #: Why it was disabled (set when it failed for WEBHOOK_DISABLE_AFTER_S, or by its owner).
    disabled_reason = models.CharField(_("disabled reason"), max_length=300, blank=True)
    # Signing secrets (`whsec_…`), never shown after creation or rotation: not in the admin,
    # the logs or any error. The previous one still signs until `previous_secret_expires_at`.
    secret = models.CharField(max_length=100, editable=False)
    previous_secret = models.CharField(max_length=100, blank=True, editable=False)
    previous_secret_expires_at = models.DateTimeField(null=True, blank=True, editable=False)
    #: First failure since the last success (None while it succeeds): the five-day rule.
    failing_since = models.DateTimeField(_("failing since"), null=True, blank=True)
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)
    updated_at = models.DateTimeField(_("updated at"), auto_now=True)

    class Meta:
        verbose_name = _("webhook endpoint")
        verbose_name_plural = _("webhook endpoints")
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["owner", "-created_at"], name="webhook_owner_created")]

    def __str__(self) -> str:
        return self.url


class WebhookDelivery(models.Model):
    """One event owed to one endpoint: the outbox row, written in the transaction of the state
    change it reports. Its id is the `webhook-id` of every attempt (receivers deduplicate on it),
    and `body` the exact bytes each attempt signs and sends."""

    class Status(models.TextChoices):
        PENDING = "PENDING", _("pending")
        DELIVERED = "DELIVERED", _("delivered")
        FAILED = "FAILED", _("failed")

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    endpoint = models.ForeignKey(
        WebhookEndpoint, on_delete=models.CASCADE, related_name="deliveries"
    )
    event_type = models.CharField(_("event"), max_length=40)
    body = models.TextField(_("body"), editable=False)
    status = models.CharField(
        _("status"), max_length=12, choices=Status.choices, default=Status.PENDING
    )
    #: Attempts in all (the log's numbering, and the fencing token of a claimed attempt).
    attempts = models.PositiveIntegerField(_("attempts"), default=0)
    #: Failures since the delivery was (re-)sent: the index into WEBHOOK_RETRY_SCHEDULE.
    step = models.PositiveIntegerField(default=0, editable=False)
    #: When the next attempt is due (PENDING only).
    next_attempt_at = models.DateTimeField(_("next attempt at"), null=True, blank=True)
    #: When the message of the next attempt was sent: the relay's compare-and-set.
    sent_at = models.DateTimeField(null=True, blank=True, editable=False)
    #: An attempt is in flight until then (a killed worker's lease expires; the relay re-sends).
    lease_expires_at = models.DateTimeField(null=True, blank=True, editable=False)
    last_status_code = models.PositiveIntegerField(_("last status code"), null=True, blank=True)
    last_error = models.CharField(_("last error"), max_length=300, blank=True)
    delivered_at = models.DateTimeField(_("delivered at"), null=True, blank=True)
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)
    updated_at = models.DateTimeField(_("updated at"), auto_now=True)

    class Meta:
        verbose_name = _("webhook delivery")
        verbose_name_plural = _("webhook deliveries")
        ordering = ["-created_at"]
        indexes = [
            models.Index(fields=["status", "next_attempt_at"], name="webhook_delivery_due"),
            models.Index(fields=["endpoint", "status"], name="webhook_delivery_endpoint"),
            models.Index(fields=["-created_at", "-id"], name="webhook_delivery_created"),
        ]

    def __str__(self) -> str:
        return self.webhook_id

    @property
    def webhook_id(self) -> str:
        """The `webhook-id` header: the same on every attempt of this delivery."""
        return f"msg_{self.id.hex}"


class WebhookAttempt(models.Model):
    """One HTTP attempt of a delivery: the delivery log (read-only)."""

    id = models.BigAutoField(primary_key=True)
    delivery = models.ForeignKey(WebhookDelivery, on_delete=models.CASCADE, related_name="log")
    endpoint = models.ForeignKey(
        WebhookEndpoint, on_delete=models.CASCADE, related_name="attempts", db_index=False
    )
    number = models.PositiveIntegerField(_("attempt"))
    status_code = models.PositiveIntegerField(_("status code"), null=True, blank=True)
    latency_ms = models.PositiveIntegerField(_("latency (ms)"), default=0)
    response_excerpt = models.CharField(_("response excerpt"), max_length=600, blank=True)
    error = models.CharField(_("error"), max_length=300, blank=True)
    next_retry_at = models.DateTimeField(_("next retry at"), null=True, blank=True)
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)

    class Meta:
        verbose_name = _("webhook attempt")
        verbose_name_plural = _("webhook attempts")
        ordering = ["-created_at", "-id"]
        indexes = [
            models.Index(fields=["endpoint", "-created_at"], name="webhook_attempt_endpoint"),
        ]

    def __str__(self) -> str:
        return f"{self.delivery_id} #{self.number}"
