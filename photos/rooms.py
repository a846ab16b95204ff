"""Room names as clients send them: our keys, their English and French names, common variants.

The Node clients (and the old API's own examples) send French names (`"salon"`, `"cuisine"`,
`"salle de bain"`): each name a household or an old client may send is stored as its canonical
key. Matching ignores case, accents, and spaces, underscores, hyphens and apostrophes. Staff read
each key as its label, in their language (`ROOM_TYPE_LABELS`: the model field's choices).
"""

from __future__ import annotations

import re
import unicodedata

from django.utils.translation import gettext_lazy as _

from ai_engine.types import ROOM_TYPES

#: How staff read the room types (the admin, in the active language); the keys stay in the data,
#: the API and the prompts.
ROOM_TYPE_LABELS = {
    "living_room": _("Living room"),
    "kitchen": _("Kitchen"),
    "bedroom": _("Bedroom"),
    "bathroom": _("Bathroom"),
    "dining_room": _("Dining room"),
    "office": _("Office"),
    "hallway": _("Hallway"),
    "garage": _("Garage"),
    "cellar": _("Cellar"),
    "attic": _("Attic"),
    "outdoor": _("Outdoor"),
    "other": _("Other"),
}
#: The choices of `Photo.room_type`: every key, in the prompts' order.
ROOM_TYPE_CHOICES = [(key, ROOM_TYPE_LABELS[key]) for key in ROOM_TYPES]

#: Canonical key → the other names it goes by (English, then French).
_NAMES: dict[str, tuple[str, ...]] = {
    "living_room": (
        "living",
        "lounge",
        "sitting room",
        "family room",
        "salon",
        "sejour",
        "salle de sejour",
        "piece a vivre",
        "piece de vie",
    ),
    "kitchen": ("cuisine", "kitchenette"),
    "bedroom": ("chambre", "chambre a coucher", "master bedroom", "guest room", "chambre d amis"),
    "bathroom": (
        "bath",
        "restroom",
        "toilet",
        "toilets",
        "wc",
        "salle de bain",
        "salle de bains",
        "salle d eau",
        "toilettes",
    ),
    "dining_room": ("dining", "salle a manger"),
    "office": ("study", "home office", "bureau"),
    "hallway": ("hall", "corridor", "entrance", "entryway", "couloir", "entree", "vestibule"),
    "garage": ("carport",),
    "cellar": ("basement", "cave", "sous sol"),
    "attic": ("loft", "grenier", "combles"),
    "outdoor": (
        "outside",
        "garden",
        "yard",
        "patio",
        "terrace",
        "balcony",
        "exterieur",
        "jardin",
        "terrasse",
        "balcon",
    ),
    "other": ("autre",),
}


def _normal(name: str) -> str:
    decomposed = unicodedata.normalize("NFKD", name.casefold())
    bare = "".join(char for char in decomposed if not unicodedata.combining(char))
    return " ".join(re.split(r"[\s_\-'’]+", bare)).strip()


_KEYS: dict[str, str] = {
    _normal(name): key for key in ROOM_TYPES for name in (key, *_NAMES.get(key, ()))
}


def room_type_key(name: str) -> str | None:
    """The canonical room key for a name a client sent, or None for a name we do not know."""
    return _KEYS.get(_normal(name))


def room_type_label(room_type: str | None) -> str:
    """The room type as staff read it, in the active language; an unknown key as it is."""
    if not room_type:
        return ""
    label = ROOM_TYPE_LABELS.get(room_type)
    return str(label) if label is not None else room_type


#: The longest room label a client may send ("Chambre 2", "Salon du haut").
ROOM_LABEL_MAX = 80


def room_label_key(label: str) -> str:
    """The key that makes two labels one room: case and spacing do not matter."""
    return " ".join(label.casefold().split())


def room_group(*, room_key: str, photo_id: object) -> str:
    """The inventory's room of a photo: its label's key, or, for an unlabelled photo (a room of
    its own), its id as the API writes it."""
    return room_key or str(photo_id)
