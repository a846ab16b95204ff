"""Webhooks over HTTPS, as production sends them: a receiver with a real certificate (trustme's
local CA), the connection pinned to the address that was checked while SNI and the certificate
check use the URL's name, and a certificate the worker does not trust refused and retried."""

from __future__ import annotations

import ssl
import time
from collections.abc import Iterator
from typing import Any

import pytest
import trustme

from ai_engine.fake import FakeProvider
from photos.lifecycle import photo_enqueue
from photos.services.analysis import Outcome, photo_analyze
from tests.factories import make_photo
from tests.webhook_receiver import Receiver
from webhooks.addresses import webhook_url_parse
from webhooks.delivery import webhook_deliver
from webhooks.http import http_post
from webhooks.models import WebhookAttempt, WebhookDelivery
from webhooks.services import endpoint_create

#: A name no DNS answers: a request for it that arrives went to the pinned address.
UNRESOLVABLE = "hooks.moverz.invalid"


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


def _receiver(ca: trustme.CA, *names: str, url_host: str) -> Receiver:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert(*names).configure_cert(context)
    return Receiver(tls=context, host=url_host)


@pytest.fixture
def tls_receiver(ca: trustme.CA) -> Iterator[Receiver]:
    server = _receiver(ca, "localhost", url_host="localhost")
    yield server
    server.close()


@pytest.fixture
def trusted(ca: trustme.CA, tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """The worker trusts the local CA as it trusts the public ones: OpenSSL's SSL_CERT_FILE."""
    bundle = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(bundle))
    monkeypatch.setenv("SSL_CERT_FILE", str(bundle))


def _post(url: str) -> Any:
    return http_post(
        target=webhook_url_parse(url),
        address="127.0.0.1",
        body=b"{}",
        headers={"Content-Type": "application/json"},
        deadline=time.monotonic() + 5,
    )


def test_the_request_goes_to_the_pinned_address_with_the_urls_name_for_tls(
    ca: trustme.CA, trusted: None
) -> None:
    server = _receiver(ca, UNRESOLVABLE, url_host=UNRESOLVABLE)
    try:
        answer = _post(server.url)
    finally:
        server.close()

    assert answer.status == 200, answer
    (request,) = server.requests
    assert request.headers["Host"] == f"{UNRESOLVABLE}:{server.server.server_port}"


def test_a_certificate_for_another_name_is_refused(ca: trustme.CA, trusted: None) -> None:
    server = _receiver(ca, "other.example", url_host=UNRESOLVABLE)
    try:
        answer = _post(server.url)
    finally:
        server.close()

    assert answer.status is None and server.requests == []
    assert answer.error.startswith("TLS certificate refused: "), answer.error
    assert "Hostname mismatch" in answer.error, answer.error


@pytest.mark.django_db
def test_a_photo_done_is_delivered_over_https_and_verifies(
    user: Any, project: Any, tls_receiver: Receiver, trusted: None, settings: Any
) -> None:
    settings.WEBHOOK_ALLOW_HTTP = False  # https only, as in production
    settings.WEBHOOK_ALLOWED_NETWORKS = ["127.0.0.0/8"]
    endpoint, secret = _endpoint(user, tls_receiver.url)
    tls_receiver.secret = secret
    _analyze(make_photo(project=project))

    outcome = webhook_deliver(delivery_id=str(WebhookDelivery.objects.get().pk))

    assert outcome is not None and outcome.delivered
    (request,) = tls_receiver.requests
    assert request.verified is True and request.payload()["type"] == "photo.done"
    assert WebhookDelivery.objects.get().endpoint_id == endpoint.pk


@pytest.mark.django_db
def test_an_untrusted_certificate_is_an_attempt_that_failed_and_is_retried(
    user: Any, project: Any, tls_receiver: Receiver, settings: Any
) -> None:
    settings.WEBHOOK_ALLOWED_NETWORKS = ["127.0.0.0/8"]
    _endpoint(user, tls_receiver.url)
    _analyze(make_photo(project=project))

    outcome = webhook_deliver(delivery_id=str(WebhookDelivery.objects.get().pk))

    assert outcome is not None and not outcome.delivered
    assert tls_receiver.requests == []
    attempt = WebhookAttempt.objects.get()
    assert attempt.status_code is None and attempt.error.startswith("TLS certificate refused")
    delivery = WebhookDelivery.objects.get()
    assert delivery.status == WebhookDelivery.Status.PENDING and delivery.next_attempt_at


def _endpoint(user: Any, url: str) -> tuple[Any, str]:
    endpoint = endpoint_create(owner=user, url=url, events=["photo.done"])
    return endpoint, endpoint.secret


def _analyze(photo: Any) -> None:
    photo_enqueue(photo=photo)
    assert photo_analyze(photo_id=str(photo.pk), provider=FakeProvider()) == Outcome.DONE
