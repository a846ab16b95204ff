"""The tables of a photo's admin page (templates/admin/photos/photo/change_form.html): the
analysis item by item with its totals, and the AI calls made for the photo."""

from __future__ import annotations

from typing import Any

from django.urls import reverse
from django.utils.http import urlencode

from aimetrics.models import AiMetric
from photos.models import Photo

#: AiMetric rows shown on a photo's page (a link leads to all of them).
PHOTO_METRICS_SHOWN = 50


def photo_detail_context(photo: Photo) -> dict[str, Any]:
    """The analysis as rows of a table, and the photo's AI calls, for its admin page."""
    analysis = photo.analysis if isinstance(photo.analysis, dict) else None
    items = []
    for item in (analysis or {}).get("items") or []:
        if isinstance(item, dict):
            items.append(
                {
                    "name": item.get("name", ""),
                    "key": item.get("key", ""),
                    "category": item.get("category", ""),
                    "quantity": item.get("quantity", 0),
                    "volume_m3": item.get("volume_m3"),
                    "source": item.get("volumeSource", ""),
                    "confidence": item.get("confidence"),
                    "fragile": bool(item.get("fragile")),
                    "dismantle": bool(item.get("dismantle")),
                }
            )
    metrics = AiMetric.objects.filter(photo_id=photo.pk).order_by("created_at", "pk")
    return {
        "analysis": analysis,
        "analysis_items": items,
        "analysis_totals": (analysis or {}).get("totals") or {},
        "ai_metrics": list(metrics[:PHOTO_METRICS_SHOWN]),
        "ai_metrics_shown": PHOTO_METRICS_SHOWN,
        "ai_metrics_url": reverse("admin:aimetrics_aimetric_changelist")
        + "?"
        + urlencode({"photo_id": str(photo.pk)}),
    }
