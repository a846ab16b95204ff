"""Signals other apps listen to, so that inventory never imports them."""

from __future__ import annotations

from django.dispatch import Signal

#: Sent inside the transaction that writes a new snapshot. kwargs: snapshot.
inventory_updated = Signal()
