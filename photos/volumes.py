"""Where item volumes come from, as photos sees it: a catalogue registered by another app.

photos never imports inventory (inventory depends on photos); inventory registers its
staff-editable catalogue here when it starts. Without one, every item keeps the model's estimate.
"""

from __future__ import annotations

from collections.abc import Iterable
from decimal import Decimal
from typing import Protocol


class VolumeCatalogue(Protocol):
    def keys(self) -> list[str]:
        """Every catalogue key, for the prompt."""
        ...

    def volumes(self, keys: Iterable[str]) -> dict[str, Decimal]:
        """Unit volume (m³) of each known key; unknown keys are left out."""
        ...


class _NoCatalogue:
    def keys(self) -> list[str]:
        return []

    def volumes(self, keys: Iterable[str]) -> dict[str, Decimal]:
        return {}


_registered: VolumeCatalogue = _NoCatalogue()


def register_volume_catalogue(catalogue: VolumeCatalogue) -> None:
    global _registered
    _registered = catalogue


def volume_catalogue() -> VolumeCatalogue:
    return _registered
