from __future__ import annotations

from django.urls import path

from webhooks.api.views import (
    WebhookDetailView,
    WebhookListView,
    WebhookRotateSecretView,
    WebhookTestView,
)

urlpatterns = [
    path("api/webhooks", WebhookListView.as_view(), name="webhooks"),
    path("api/webhooks/<str:endpoint_id>", WebhookDetailView.as_view(), name="webhook"),
    path("api/webhooks/<str:endpoint_id>/test", WebhookTestView.as_view(), name="webhook-test"),
    path(
        "api/webhooks/<str:endpoint_id>/rotate-secret",
        WebhookRotateSecretView.as_view(),
        name="webhook-rotate-secret",
    ),
]
