"""The staff-editable volume catalogue, as photos' analysis reads it."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable
from decimal import Decimal

from inventory.models import VolumeCatalogueEntry

KEYS_TTL_S = 60.0


class DatabaseVolumeCatalogue:
    """Volumes are read fresh for every photo (one indexed query); the key list for the prompt
    is cached for a minute per process."""

    def __init__(self) -> None:
        self._keys: list[str] = []
        self._keys_read_at = float("-inf")
        self._lock = threading.Lock()

    def keys(self) -> list[str]:
        if time.monotonic() - self._keys_read_at > KEYS_TTL_S:
            # One thread reads; the others (a worker has dozens) wait for its list instead of
            # all asking the database, and the pool, at once.
            with self._lock:
                if time.monotonic() - self._keys_read_at > KEYS_TTL_S:
                    self._keys = list(VolumeCatalogueEntry.objects.values_list("key", flat=True))
                    self._keys_read_at = time.monotonic()
        return self._keys

    def volumes(self, keys: Iterable[str]) -> dict[str, Decimal]:
        return dict(
            VolumeCatalogueEntry.objects.filter(key__in=set(keys)).values_list("key", "volume_m3")
        )
