"""Parameters for the hand-written SQL of the hot paths (claim, DONE, enqueue, sync request)."""

from __future__ import annotations

from typing import Any

from django.db import connection
from django.db.models import Field, Model


def db_value(model: type[Model], field: str, value: Any) -> Any:
    """`value` as the database takes it for `model.field`: UUIDs, datetimes, JSON and decimals
    differ between backends, and the model's field knows how (as the ORM would prepare it)."""
    model_field = model._meta.get_field(field)
    assert isinstance(model_field, Field)
    return model_field.get_db_prep_save(value, connection)
