"""Bench data: images, users, and rows inserted in bulk with SQL (INSERT … SELECT generate_series).

Runs inside the bench process once Django is set up (bench/run.py). Bulk inserts name every
concrete column of the model: the ones we choose are SQL expressions, the others get the field's
default, so a column added to a model later does not break the bench.
"""

from __future__ import annotations

import io
import uuid
from pathlib import Path
from typing import Any

from django.contrib.auth import get_user_model
from django.db import connection
from django.db.models import Model
from PIL import Image
from pillow_heif import register_heif_opener

from ai_engine.types import ROOM_TYPES

register_heif_opener()  # the phone HEIC of the uploads

PHONE_SIZE = (4032, 3024)  # 12 MP, a phone's main camera
PHONE_TARGET_BYTES = 4_000_000
SMALL_SIZE = (1024, 768)
ORIENTATION, MAKE, MODEL, DATETIME, GPS_IFD = 0x0112, 0x010F, 0x0110, 0x0132, 0x8825

#: A realistic DONE analysis (five items), as the API serves it when polled.
ANALYSIS: dict[str, Any] = {
    "items": [
        {
            "key": key,
            "name": name,
            "category": category,
            "quantity": quantity,
            "volume_m3": volume,
            "volumeSource": "catalogue",
            "confidence": 0.87,
            "fragile": False,
            "dismantle": False,
        }
        for key, name, category, quantity, volume in (
            ("sofa_3_seat", "3-seat sofa", "furniture", 1, 2.0),
            ("chair", "Chair", "furniture", 4, 1.2),
            ("carton", "Standard carton", "box", 12, 0.72),
            ("television", "Television", "electronics", 1, 0.3),
            ("bookcase", "Bookcase", "furniture", 2, 2.0),
        )
    ],
    "totals": {"items": 20, "volume_m3": 6.22},
    "confidence": 0.86,
    "provider": "anthropic",
    "model": "claude-sonnet-4-6",
    "promptVersion": "bench",
    "roomConfidence": 0.91,
}


#: Catalogue keys (inventory migration 0003) a room's item lines are drawn from.
LINE_KEYS = (
    "sofa_3_seat", "sofa_2_seat", "armchair", "double_bed", "single_bed", "wardrobe_2_door",
    "chest_of_drawers", "bedside_table", "dining_table", "chair", "coffee_table", "tv_unit",
    "bookcase", "desk", "fridge", "cooker", "washing_machine", "carton", "television", "mirror",
)  # fmt: skip


def lines_analysis_sql(*, lines_per_room: int, lines_per_photo: int) -> str:
    """A DONE analysis built per row `g`: `lines_per_photo` item lines, a window sliding over
    the room's `lines_per_room` kinds (20 catalogue keys, then names the catalogue lacks), with
    quantities of 1 to 4, so that the room's photos overlap as views of one room do."""
    keys = "ARRAY[" + ", ".join(f"'{key}'" for key in LINE_KEYS) + "]"
    kind = f"((g + j) % {lines_per_room})"
    key = f"CASE WHEN {kind} < {len(LINE_KEYS)} THEN ({keys})[1 + {kind}] ELSE 'other' END"
    name = (
        f"CASE WHEN {kind} < {len(LINE_KEYS)} THEN ({keys})[1 + {kind}] ELSE 'thing ' || {kind} END"
    )
    item = (
        f"jsonb_build_object('key', {key}, 'name', {name}, 'category', 'furniture',"
        f" 'quantity', 1 + (g + 2 * j) % 4, 'volume_m3', 0.5 * (1 + (g + 2 * j) % 4),"
        " 'volumeSource', 'catalogue', 'confidence', 0.87, 'fragile', j % 7 = 0,"
        " 'dismantle', j % 5 = 0)"
    )
    return (
        f"jsonb_build_object('items', (SELECT jsonb_agg({item}) FROM generate_series(0, "
        f"{lines_per_photo - 1}) AS j), 'totals', jsonb_build_object('items', 0, 'volume_m3', 0),"
        " 'confidence', 0.86, 'provider', 'anthropic', 'model', 'claude-sonnet-4-6',"
        " 'promptVersion', 'bench')"
    )


def _texture(size: tuple[int, int], seed: int, grain: int = 2) -> Image.Image:
    """Noise over gradients: compresses about like a real photo (a flat image would not).
    `grain`: the noise's pixel size."""
    width, height = size
    gradient = Image.linear_gradient("L").resize(size)
    channels = []
    for index in range(3):
        noise = Image.effect_noise((width // grain, height // grain), 40 + 5 * index + seed % 7)
        noise = noise.resize(size, Image.Resampling.BICUBIC)
        base = gradient.transpose(Image.Transpose.FLIP_LEFT_RIGHT) if index == 1 else gradient
        channels.append(Image.blend(base, noise, 0.75))
    return Image.merge("RGB", channels)


def _phone_exif() -> Image.Exif:
    exif = Image.Exif()
    exif[ORIENTATION] = 6  # held upright: stored sideways, as phones do
    exif[MAKE] = "BenchPhone"
    exif[MODEL] = "BP-12"
    exif[DATETIME] = "2026:11:02 10:15:00"
    exif.get_ifd(GPS_IFD).update({1: "N", 2: (45.0, 45.0, 0.0), 3: "E", 4: (4.0, 50.0, 0.0)})
    return exif


def phone_photo() -> bytes:
    """A 12 MP JPEG of about 4 MB with a phone's EXIF (orientation, GPS)."""
    image = _texture(PHONE_SIZE, seed=1)
    exif = _phone_exif()
    low, high, best = 50, 95, b""
    while low <= high:  # the highest quality that stays within the target size
        quality = (low + high) // 2
        buffer = io.BytesIO()
        image.save(buffer, format="JPEG", quality=quality, exif=exif)
        if buffer.tell() <= PHONE_TARGET_BYTES * 1.05:
            best, low = buffer.getvalue(), quality + 1
        else:
            high = quality - 1
    return best


def phone_heic() -> bytes:
    """The same 12 MP photo as a phone's HEIC (about 2.5 MB, EXIF with orientation and GPS).

    Its texture is coarser than the JPEG's: x265 takes minutes on per-pixel noise, seconds on
    this, and the file's size and decode time are what a phone's main camera writes.
    """
    image = _texture(PHONE_SIZE, seed=1, grain=4)
    buffer = io.BytesIO()
    image.save(
        buffer, format="HEIF", quality=50, exif=_phone_exif(), enc_params={"preset": "ultrafast"}
    )
    return buffer.getvalue()


def small_photo() -> bytes:
    """A 1024×768 JPEG (about what a client that resizes before upload sends): the preflight
    re-encodes it but does not need to shrink it."""
    buffer = io.BytesIO()
    _texture(SMALL_SIZE, seed=2).save(buffer, format="JPEG", quality=85)
    return buffer.getvalue()


def store_media(media_root: Path, name: str, data: bytes) -> str:
    """Write `data` under MEDIA_ROOT; the name a FileField stores."""
    path = media_root / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return name


def user_with_token(username: str, *, staff: bool = False) -> tuple[Any, str]:
    from rest_framework.authtoken.models import Token

    user = get_user_model().objects.create_user(
        username=username, password=uuid.uuid4().hex, is_staff=staff, is_superuser=staff
    )
    return user, Token.objects.create(user=user).key


def bulk_insert(
    model: type[Model], count: int, expressions: dict[str, tuple[str, list[Any]]]
) -> None:
    """INSERT `count` rows of `model` in one statement. `expressions`: column attname → (SQL
    expression over the series value `g`, its parameters); other columns get their default."""
    columns, parts, params = [], [], []
    for field in model._meta.concrete_fields:
        columns.append(connection.ops.quote_name(str(field.column)))
        if field.attname in expressions:
            sql, sql_params = expressions[field.attname]
            # Literal % (modulo) doubled; %s stays a placeholder.
            parts.append(sql.replace("%", "%%").replace("%%s", "%s"))
            params.extend(sql_params)
        elif field.primary_key and field.get_internal_type() in ("AutoField", "BigAutoField"):
            parts.append("DEFAULT")  # not valid in SELECT: replaced below
        else:
            parts.append("%s")
            params.append(field.get_db_prep_save(field.get_default(), connection))
    # A serial primary key is left out so the sequence fills it.
    keep = [i for i, part in enumerate(parts) if part != "DEFAULT"]
    sql = (
        f"INSERT INTO {connection.ops.quote_name(model._meta.db_table)} "
        f"({', '.join(columns[i] for i in keep)}) "
        f"SELECT {', '.join(parts[i] for i in keep)} FROM generate_series(1, %s) AS g"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, [*params, count])


def rooms_sql() -> str:
    """A room type cycling with g (every type but "other")."""
    rooms = [room for room in ROOM_TYPES if room != "other"]
    return "(ARRAY[" + ", ".join(f"'{room}'" for room in rooms) + f"])[1 + g % {len(rooms)}]"


def photos_insert(
    *,
    project_id: uuid.UUID,
    count: int,
    image: str,
    status: str = "PENDING",
    queued: bool = False,
    room_type: str | None = None,
    done: bool = False,
    photos_per_room: int | None = None,
) -> list[str]:
    """`count` photos of one project; their ids, oldest first. `photos_per_room`: DONE photos
    labelled "Room <n>" by groups of that many, each analysis with realistic item lines
    (`lines_analysis_sql`: 20 kinds per room, 10 lines per photo) instead of `ANALYSIS`."""
    from photos.models import Photo

    tag = uuid.uuid4().hex[:12]  # finds this batch again, in order
    expressions: dict[str, tuple[str, list[Any]]] = {
        "id": ("gen_random_uuid()", []),
        "project_id": ("%s", [project_id]),
        "image": ("%s", [image]),
        "image_format": ("'jpg'", []),
        "image_bytes": ("100000", []),
        "image_width": ("1024", []),
        "image_height": ("768", []),
        "sha256": ("%s || lpad(g::text, 12, '0')", [tag]),
        "status": ("%s", ["DONE" if done else status]),
        "created_at": ("now() - make_interval(secs => g)", []),
        "updated_at": ("now()", []),
    }
    if room_type == "cycle":
        expressions["room_type"] = (rooms_sql(), [])
    elif room_type:
        expressions["room_type"] = ("%s", [room_type])
    if queued:
        expressions["queued_at"] = ("now()", [])
        expressions["run"] = ("1", [])
    if done:
        from django.db.backends.postgresql.psycopg_any import Jsonb

        expressions |= {
            "analysis": ("%s", [Jsonb(ANALYSIS)]),
            "items_count": ("1 + g % 20", []),
            "volume_m3": ("((g % 97) / 10.0)::numeric(12, 2)", []),
            "processed_at": ("now()", []),
            "attempts": ("1", []),
            "run": ("1", []),
        }
        if room_type is None:
            expressions["room_type"] = (rooms_sql(), [])
        if photos_per_room:
            expressions |= {
                "analysis": (lines_analysis_sql(lines_per_room=20, lines_per_photo=10), []),
                "room_label": (f"'Room ' || (g / {photos_per_room})", []),
                "room_key": (f"'room ' || (g / {photos_per_room})", []),
            }
    bulk_insert(Photo, count, expressions)
    with connection.cursor() as cursor:
        if done:
            cursor.execute(ITEMS_SQL, [tag + "%"])
        cursor.execute(
            "SELECT id FROM photos_photo WHERE sha256 LIKE %s ORDER BY sha256", [tag + "%"]
        )
        return [str(row[0]) for row in cursor.fetchall()]


#: The item rows (photos.PhotoItem) of the DONE photos of one batch (`sha256 LIKE %s`), as the
#: DONE writes them (photos/items.py): per photo, one row per catalogue key, or per normalised
#: name of an item the catalogue lacks, quantities and volumes summed, in the photo's room.
ITEMS_SQL = """
INSERT INTO photos_photoitem (photo_id, project_id, room, line_key, by_name, key, name, category,
                              quantity, volume_m3, fragile, dismantle)
SELECT photo, project, room, line_key, by_name, MIN(key), MIN(name), MIN(category),
       COALESCE(SUM(quantity), 0)::integer, COALESCE(SUM(volume), 0), bool_or(fragile),
       bool_or(dismantle)
FROM (
  SELECT p.id AS photo, p.project_id AS project,
         COALESCE(NULLIF(p.room_key, ''), p.id::text) AS room, c.key IS NULL AS by_name,
         COALESCE(c.key, lower(regexp_replace(btrim(e ->> 'name'), '\\s+', ' ', 'g')), '')
           AS line_key,
         e ->> 'key' AS key, e ->> 'name' AS name, e ->> 'category' AS category,
         (e ->> 'quantity')::numeric AS quantity, (e ->> 'volume_m3')::numeric AS volume,
         e -> 'fragile' = 'true'::jsonb AS fragile, e -> 'dismantle' = 'true'::jsonb AS dismantle
  FROM photos_photo p
  CROSS JOIN LATERAL jsonb_array_elements(p.analysis -> 'items') AS e
  LEFT JOIN inventory_volumecatalogueentry c ON c.key = e ->> 'key'
  WHERE p.sha256 LIKE %s
) AS item
GROUP BY photo, project, room, line_key, by_name
"""


def aimetrics_insert(*, count: int, days: int, project_ids: list[uuid.UUID]) -> None:
    """`count` AiMetric rows spread evenly over the last `days` days: two calls per photo, a few
    failures and retries, realistic token counts and costs, a small `meta`."""
    from aimetrics.models import AiMetric

    seconds = days * 86400 / count
    projects = "ARRAY[" + ", ".join(f"'{pid}'::uuid" for pid in project_ids) + "]"
    expressions: dict[str, tuple[str, list[Any]]] = {
        "created_at": ("now() - make_interval(secs => g * %s)", [seconds]),
        "provider": ("CASE WHEN g % 50 = 0 THEN 'openai' ELSE 'anthropic' END", []),
        "model": ("CASE WHEN g % 50 = 0 THEN 'gpt-5.4-mini' ELSE 'claude-sonnet-4-6' END", []),
        "operation": ("CASE WHEN g % 2 = 0 THEN 'detect_room' ELSE 'analyze_photo' END", []),
        "latency_ms": ("800 + (g::bigint * 7919) % 6000", []),
        "success": ("g % 40 <> 0", []),
        "error_type": (
            "CASE WHEN g % 40 = 0 THEN (ARRAY['TIMEOUT', 'RATE_LIMIT', 'PROVIDER_DOWN'])"
            "[1 + (g / 40) % 3] END",
            [],
        ),
        "retries": ("CASE WHEN g % 25 = 0 THEN 1 ELSE 0 END", []),
        "tokens_in": ("1200 + g % 900", []),
        "tokens_out": ("150 + g % 400", []),
        "cost_usd": ("((1200 + g % 900) * 3 + (150 + g % 400) * 15) / 1000000.0", []),
        # Two calls per photo: ids derived from g / 2, so a photo's calls share it.
        "photo_id": ("md5('photo' || (g / 2)::text)::uuid", []),
        "project_id": (f"({projects})[1 + (g / 40) % {len(project_ids)}]", []),
        "meta": (
            "jsonb_build_object('run', 1, 'promptVersion', 'bench', 'sentBytes', 180000 + g % 9000,"
            " 'sentWidth', 1568, 'sentHeight', 1176, 'estimatedImageTokens', 2459,"
            " 'originalBytes', 4000000, 'originalWidth', 3024, 'originalHeight', 4032)",
            [],
        ),
    }
    bulk_insert(AiMetric, count, expressions)
