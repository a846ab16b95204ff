"""Schemathesis (a property-based API fuzzer) against our own OpenAPI schema, in process.

It takes the schema `/api/schema/` serves (checked below to be the very document), generates
requests for every operation from it, valid and invalid ones, sends them to the WSGI application
as an authenticated staff user, and runs every check Schemathesis has: no server error; status
code, content type, headers and body as the schema says; 401 without credentials; 405 for methods
the schema does not list; schema-valid requests accepted.

One check is left out: "schema-violating request accepted". DRF is lenient by design where a
client cannot be misunderstood (`{"name": 0}` becomes "0", an unusable `pageSize` falls back to
the default), and a stricter API would break clients for no safety gain.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from django.core.signals import request_finished, request_started
from django.core.wsgi import get_wsgi_application
from django.db import close_old_connections
from drf_spectacular.generators import SchemaGenerator
from hypothesis import HealthCheck, settings
from rest_framework.test import APIClient
from schemathesis.specs.openapi.checks import negative_data_rejection, positive_data_acceptance

from tests.factories import make_token, make_user

# Per operation; SCHEMATHESIS_EXAMPLES=500 for a deeper run.
EXAMPLES_PER_OPERATION = int(os.environ.get("SCHEMATHESIS_EXAMPLES", "40"))


def _generated_schema() -> dict[str, Any]:
    """What /api/schema/ serves, built without a request (the loader runs at collection)."""
    schema = SchemaGenerator().get_schema(request=None, public=True)
    return dict(json.loads(json.dumps(schema, default=str)))


schema = schemathesis.openapi.from_dict(_generated_schema())
schema.app = get_wsgi_application()


@pytest.fixture
def auth_headers(db: Any, settings: Any) -> Iterator[dict[str, str]]:
    """A staff user's token; the WSGI application runs inside the test's transaction (like
    Django's test client, it must not close the connection at each request)."""
    settings.THROTTLE_UPLOAD_RATE = settings.THROTTLE_ENQUEUE_RATE = "off"
    settings.THROTTLE_WEBHOOK_RATE = "off"
    for signal in (request_started, request_finished):
        signal.disconnect(close_old_connections)
    yield {"Authorization": f"Token {make_token(make_user(staff=True))}"}
    for signal in (request_started, request_finished):
        signal.connect(close_old_connections)


def test_the_fuzzed_schema_is_the_served_one(auth_headers: dict[str, str]) -> None:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=auth_headers["Authorization"])

    served = client.get("/api/schema/", {"format": "json"})

    assert served.status_code == 200
    assert served.json() == _generated_schema()


@schema.parametrize()
@settings(
    max_examples=EXAMPLES_PER_OPERATION,
    deadline=None,
    database=None,
    suppress_health_check=list(HealthCheck),
)
def test_api_answers_as_its_schema_says(case: Any, auth_headers: dict[str, str]) -> None:
    excluded = [negative_data_rejection]
    if (case.method, case.path) == ("POST", "/api/photos"):
        # A schema-valid upload is any bytes; only a decodable image is accepted (400 otherwise).
        excluded.append(positive_data_acceptance)
    if case.path.startswith("/api/webhooks") and case.method in ("POST", "PATCH"):
        # A schema-valid URL is any string; only an https URL of a public address is accepted.
        excluded.append(positive_data_acceptance)
    case.call_and_validate(headers=dict(auth_headers), excluded_checks=excluded)
