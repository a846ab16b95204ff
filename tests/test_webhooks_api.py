"""The webhook endpoints API: registration and its checks, ownership, changes, the test ping,
secret rotation (tests/webhook_receiver.py starts the receivers)."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import pytest
from django.utils import timezone
from rest_framework.test import APIClient
from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError

from tests.factories import make_token, make_user
from tests.webhook_receiver import Received, Receiver
from webhooks.delivery import webhook_deliver
from webhooks.models import EVENTS, WebhookDelivery, WebhookEndpoint

pytestmark = pytest.mark.django_db


def _create(api: APIClient, **body: Any) -> Any:
    return api.post("/api/webhooks", body, format="json")


def _verify(secret: str, request: Received) -> Any:
    return Webhook(secret).verify(request.body, request.headers)


@pytest.mark.parametrize(
    "url",
    ["http://hooks.example.com/x", "ftp://hooks.example.com/x", "hooks.example.com", "https://"],
)
def test_only_https_urls_are_accepted(api: APIClient, url: str) -> None:
    response = _create(api, url=url)

    assert response.status_code == 400, response.content
    assert response.json()["error"].startswith("url: ")
    assert not WebhookEndpoint.objects.exists()


@pytest.mark.parametrize(
    ("url", "why"),
    [
        ("https://127.0.0.1/hook", "loopback"),
        ("https://localhost/hook", "loopback"),
        ("https://10.1.2.3/hook", "private"),
        ("https://192.168.0.10:8443/hook", "private"),
        ("https://169.254.169.254/latest/meta-data", "metadata"),
        ("https://[::1]/hook", "loopback"),
        ("https://[::ffff:10.0.0.1]/hook", "private"),
        ("https://224.0.0.1/hook", "multicast"),
        ("https://0.0.0.0/hook", "unspecified"),
    ],
)
def test_internal_addresses_are_refused_at_registration(api: APIClient, url: str, why: str) -> None:
    response = _create(api, url=url)

    assert response.status_code == 400, response.content
    assert why in response.json()["error"]


def test_credentials_in_the_url_are_refused(api: APIClient, local_webhooks: None) -> None:
    response = _create(api, url="http://user:pw@127.0.0.1:9/hook")

    assert response.status_code == 400
    assert "credentials" in response.json()["error"]


def test_an_unknown_event_is_refused_with_the_accepted_ones(
    api: APIClient, receiver: Receiver, local_webhooks: None
) -> None:
    response = _create(api, url=receiver.url, events=["photo.done", "photo.deleted"])

    assert response.status_code == 400
    error = response.json()["error"]
    assert "'photo.deleted'" in error
    for event in EVENTS:
        assert event in error


def test_the_secret_is_shown_once(api: APIClient, receiver: Receiver, local_webhooks: None) -> None:
    created = _create(api, url=receiver.url, description="CRM")

    assert created.status_code == 201, created.content
    body = created.json()
    assert body["secret"].startswith("whsec_")
    assert body["events"] == list(EVENTS)  # the default: every event
    assert body["enabled"] is True and body["description"] == "CRM"
    for path in (f"/api/webhooks/{body['id']}", "/api/webhooks"):
        answer = api.get(path)
        assert answer.status_code == 200
        assert body["secret"] not in answer.content.decode()
        assert "secret" not in answer.json()
    assert api.get("/api/webhooks").json()["results"][0]["id"] == body["id"]


def test_another_users_endpoint_is_404_whatever_the_method(
    api: APIClient, receiver: Receiver, local_webhooks: None
) -> None:
    endpoint_id = _create(api, url=receiver.url).json()["id"]
    other = APIClient()
    other.credentials(HTTP_AUTHORIZATION=f"Token {make_token(make_user())}")
    path = f"/api/webhooks/{endpoint_id}"

    assert other.get(path).status_code == 404
    assert other.patch(path, {"enabled": False}, format="json").status_code == 404
    assert other.delete(path).status_code == 404
    assert other.post(f"{path}/test").status_code == 404
    assert other.post(f"{path}/rotate-secret").status_code == 404
    assert other.get("/api/webhooks").json()["results"] == []
    assert api.get("/api/webhooks/not-a-uuid").status_code == 404
    assert WebhookEndpoint.objects.get(pk=endpoint_id).enabled
    assert not WebhookDelivery.objects.exists()


def test_patch_changes_events_and_enabled_and_delete_removes(
    api: APIClient, receiver: Receiver, local_webhooks: None
) -> None:
    endpoint_id = _create(api, url=receiver.url).json()["id"]
    path = f"/api/webhooks/{endpoint_id}"

    changed = api.patch(path, {"events": ["photo.error"], "enabled": False}, format="json")

    assert changed.status_code == 200, changed.content
    assert changed.json()["events"] == ["photo.error"]
    assert changed.json()["enabled"] is False
    assert changed.json()["disabledReason"] == "Disabled by its owner."
    assert api.post(f"{path}/test").status_code == 409
    assert api.patch(path, {"url": "https://10.0.0.1/"}, format="json").status_code == 400
    assert api.patch(path, {"events": []}, format="json").status_code == 400
    again = api.patch(path, {"enabled": True}, format="json").json()
    assert again["enabled"] is True and again["disabledReason"] == ""
    assert api.delete(path).status_code == 204
    assert api.get(path).status_code == 404


def test_the_test_endpoint_sends_a_signed_ping(
    api: APIClient,
    receiver: Receiver,
    local_webhooks: None,
    django_capture_on_commit_callbacks: Any,
) -> None:
    created = _create(api, url=receiver.url, events=["photo.done"]).json()

    with django_capture_on_commit_callbacks(execute=True):
        response = api.post(f"/api/webhooks/{created['id']}/test")
    assert response.status_code == 202, response.content
    delivery = response.json()["delivery"]
    assert delivery["eventType"] == "ping" and delivery["webhookId"].startswith("msg_")
    webhook_deliver(delivery_id=delivery["webhookId"].removeprefix("msg_"))

    (request,) = receiver.requests
    assert request.headers["webhook-id"] == delivery["webhookId"]
    payload = _verify(created["secret"], request)
    assert payload["type"] == "ping"
    assert payload["data"]["endpointId"] == created["id"]


def test_after_a_rotation_both_secrets_verify_until_the_overlap_ends(
    api: APIClient, receiver: Receiver, local_webhooks: None
) -> None:
    created = _create(api, url=receiver.url).json()
    old = created["secret"]

    rotated = api.post(f"/api/webhooks/{created['id']}/rotate-secret")

    assert rotated.status_code == 200
    new = rotated.json()["secret"]
    assert new.startswith("whsec_") and new != old
    expires = rotated.json()["previousSecretExpiresAt"]
    assert expires is not None
    assert "secret" not in api.get(f"/api/webhooks/{created['id']}").json()
    ping = api.post(f"/api/webhooks/{created['id']}/test").json()["delivery"]
    webhook_deliver(delivery_id=ping["webhookId"].removeprefix("msg_"))
    (during,) = receiver.requests
    assert len(during.headers["webhook-signature"].split(" ")) == 2
    assert _verify(old, during)["type"] == "ping"
    assert _verify(new, during)["type"] == "ping"

    WebhookEndpoint.objects.filter(pk=created["id"]).update(
        previous_secret_expires_at=timezone.now() - timedelta(seconds=1)
    )
    ping = api.post(f"/api/webhooks/{created['id']}/test").json()["delivery"]
    webhook_deliver(delivery_id=ping["webhookId"].removeprefix("msg_"))
    after = receiver.requests[1]
    assert json.loads(after.body)["type"] == "ping"
    assert _verify(new, after)["type"] == "ping"
    with pytest.raises(WebhookVerificationError):
        _verify(old, after)


def test_creating_testing_and_rotating_are_throttled(
    api: APIClient, receiver: Receiver, local_webhooks: None, settings: Any
) -> None:
    settings.THROTTLE_WEBHOOK_RATE = "2/min"
    assert _create(api, url=receiver.url).status_code == 201
    assert _create(api, url=receiver.url).status_code == 201

    throttled = _create(api, url=receiver.url)

    assert throttled.status_code == 429
    assert int(throttled["Retry-After"]) >= 1
