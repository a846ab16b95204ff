"""Signals other apps listen to, so that photos never imports them."""

from __future__ import annotations

from django.dispatch import Signal

#: Sent inside the transaction that stores a DONE analysis. kwargs: photo_id, project_id.
photo_done = Signal()

#: Sent inside the transaction that moves a photo to ERROR (terminal). kwargs: photo_id,
#: project_id.
photo_failed = Signal()
