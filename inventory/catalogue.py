"""The staff-editable volume catalogue, as photos' analysis reads it."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable
from decimal import Decimal

from inventory.models import VolumeCatalogueEntry

TTL_S = 60.0


class DatabaseVolumeCatalogue:
    """The whole catalogue, read once a minute per process: the key list for the prompt and the
    volumes for the result come from the same read, and a photo's analysis costs no query for
    them (the worker's hottest path). A staff edit reaches both within a minute."""

    def __init__(self) -> None:
        self._volumes: dict[str, Decimal] = {}
        self._keys: list[str] = []
        self._read_at = float("-inf")
        self._lock = threading.Lock()

    def _fresh(self) -> dict[str, Decimal]:
        if time.monotonic() - self._read_at > TTL_S:
            # One thread reads; the others (a worker has dozens) wait for its copy instead of
            # all asking the database, and the pool, at once.
            with self._lock:
                if time.monotonic() - self._read_at > TTL_S:
                    rows = VolumeCatalogueEntry.objects.values_list("key", "volume_m3")
                    volumes = dict(rows)
                    self._keys, self._volumes = list(volumes), volumes
                    self._read_at = time.monotonic()
        return self._volumes

    def keys(self) -> list[str]:
        self._fresh()
        return self._keys

    def volumes(self, keys: Iterable[str]) -> dict[str, Decimal]:
        volumes = self._fresh()
        return {key: volumes[key] for key in set(keys) if key in volumes}
