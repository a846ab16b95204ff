"""HTTP adapters of the inventory app."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.http.response import HttpResponseBase
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from infra.api import FirstRendererNegotiation
from inventory.cubesheet import Format, cubesheet_render, cubesheet_response
from inventory.models import InventorySnapshot
from inventory.services import inventory_request_sync
from photos.api.views import ERRORS, PROJECT_ID
from photos.models import Project
from photos.selectors import project_for_owner


class ItemLineSerializer(serializers.Serializer[Any]):
    """One kind of item in a room, merged across the photos that show it."""

    key = serializers.CharField(allow_null=True, help_text="The catalogue key (or the model's).")
    name = serializers.CharField(allow_null=True)
    category = serializers.CharField(allow_null=True)
    quantity = serializers.IntegerField(
        help_text="The largest quantity seen in any one photo of the room (INVENTORY_MERGE=sum: "
        "the sum over its photos), or the one staff set (`corrected`)."
    )
    unitVolume_m3 = serializers.FloatField(help_text="The volume of one item.")
    volume_m3 = serializers.FloatField(help_text="unitVolume_m3 × quantity, to the cent.")
    fragile = serializers.BooleanField()
    dismantle = serializers.BooleanField()
    photos = serializers.ListField(
        child=serializers.UUIDField(), help_text="The photos it was seen in."
    )
    # A declared field, popped from the class by DRF's metaclass: it does not shadow Field.source.
    source = serializers.ChoiceField(  # type: ignore[assignment]
        choices=["catalogue", "model"],
        help_text="Where the unit volume comes from: the volume catalogue, or the model's "
        "estimate for an item the catalogue lacks.",
    )
    # Snapshots written before corrections have no flag: none of their lines was corrected.
    corrected = serializers.BooleanField(
        default=False,
        help_text="A staff correction changed this line (its quantity or catalogue key) or added "
        "it (then `photos` is empty): the line is what the mover quotes, not the model's answer.",
    )


class RoomSerializer(serializers.Serializer[Any]):
    """A room as the household has it: the photos of one `room` label, or one unlabelled photo."""

    room = serializers.CharField(
        allow_null=True, help_text="The photos' room label; null: one photo without a label."
    )
    roomType = serializers.CharField(help_text="The room type most of its photos have.")
    itemsCount = serializers.IntegerField(help_text="The sum of its lines' quantities.")
    volume_m3 = serializers.FloatField(help_text="The sum of its lines' volumes.")
    photos = serializers.ListField(child=serializers.UUIDField())
    # Snapshots written before item lines have none.
    items = ItemLineSerializer(many=True, default=list)


class InventorySerializer(serializers.ModelSerializer[InventorySnapshot]):
    projectId = serializers.UUIDField(source="project_id")
    totalItems = serializers.IntegerField(source="total_items")
    totalVolume = serializers.FloatField(source="total_volume")
    rooms = RoomSerializer(many=True)
    photoCount = serializers.IntegerField(source="photo_count")
    createdAt = serializers.DateTimeField(source="created_at")

    class Meta:
        model = InventorySnapshot
        fields = ["projectId", "totalItems", "totalVolume", "rooms", "photoCount", "createdAt"]


class SyncResponseSerializer(serializers.Serializer[Any]):
    success = serializers.BooleanField()
    status = serializers.ChoiceField(choices=["enqueued", "already_queued"])
    jobId = serializers.CharField()


def _latest_snapshot(project: Project) -> InventorySnapshot | None:
    snapshot = InventorySnapshot.objects.filter(project=project).order_by("-created_at").first()
    if snapshot is not None:
        snapshot.project = project  # the sheet names it: no second read
    return snapshot


def _no_inventory() -> Response:
    return Response(
        {"error": "This project has no inventory yet."}, status=status.HTTP_404_NOT_FOUND
    )


class InventoryView(APIView):
    @extend_schema(parameters=[PROJECT_ID], responses={200: InventorySerializer, **ERRORS})
    def get(self, request: Request, project_id: str) -> Response:
        """The project's latest inventory snapshot; 404 before the first sync."""
        project = project_for_owner(owner=request.user, project_id=project_id)
        snapshot = _latest_snapshot(project)
        if snapshot is None:
            return _no_inventory()
        return Response(InventorySerializer(snapshot).data)


class CubeSheetQuerySerializer(serializers.Serializer[Any]):
    lang = serializers.ChoiceField(
        choices=settings.LANGUAGES,
        required=False,
        help_text="The sheet's language; without it, the request's Accept-Language (English "
        "when it names neither).",
    )


CUBE_SHEET = (
    "The project's latest inventory snapshot as a cube sheet: per room, its item lines "
    "(quantity, unit and total volume in m³, marks: fragile, to dismantle, corrected by staff, "
    "estimated volume), each room's total and the project's; the project's name and the "
    "snapshot's date. In the language of `lang`, or of Accept-Language (French: decimal comma). "
    "404 before the first sync."
)


class _CubeSheetView(APIView):
    # Errors stay JSON whatever the client accepts; the sheet is a response of its own type.
    content_negotiation_class = FirstRendererNegotiation
    fmt: Format

    def get(self, request: Request, project_id: str) -> HttpResponseBase:
        query = CubeSheetQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        project = project_for_owner(owner=request.user, project_id=project_id)
        snapshot = _latest_snapshot(project)
        if snapshot is None:
            return _no_inventory()
        sheet = cubesheet_render(
            snapshot=snapshot, fmt=self.fmt, language=query.validated_data.get("lang")
        )
        return cubesheet_response(sheet)


class CubeSheetCsvView(_CubeSheetView):
    fmt = "csv"

    @extend_schema(
        operation_id="projects_inventory_csv",
        description=CUBE_SHEET
        + " CSV: UTF-8 with a byte-order mark; `;` between fields in French, `,` in English; "
        "the project and the date, then a row per line (its room and room type, one column per "
        "mark: yes or empty), a total row per room and the project's total.",
        parameters=[PROJECT_ID, CubeSheetQuerySerializer],
        responses={
            (200, "text/csv"): OpenApiResponse(
                OpenApiTypes.STR, description="Content-Disposition: attachment, with a filename."
            ),
            **ERRORS,
        },
    )
    def get(self, request: Request, project_id: str) -> HttpResponseBase:
        return super().get(request, project_id)


class CubeSheetPdfView(_CubeSheetView):
    fmt = "pdf"

    @extend_schema(
        operation_id="projects_inventory_pdf",
        description=CUBE_SHEET + " PDF: A4, a table per room.",
        parameters=[PROJECT_ID, CubeSheetQuerySerializer],
        responses={
            (200, "application/pdf"): OpenApiResponse(
                OpenApiTypes.BINARY, description="Content-Disposition: inline, with a filename."
            ),
            **ERRORS,
        },
    )
    def get(self, request: Request, project_id: str) -> HttpResponseBase:
        return super().get(request, project_id)


class InventorySyncView(APIView):
    @extend_schema(
        request=None, parameters=[PROJECT_ID], responses={202: SyncResponseSerializer, **ERRORS}
    )
    def post(self, request: Request, project_id: str) -> Response:
        """Queue a sync of the project's inventory (coalesced with one already waiting)."""
        project = project_for_owner(owner=request.user, project_id=project_id)
        sent = inventory_request_sync(project_id=project.pk, delay_ms=0)
        body = {
            "success": True,
            "status": "enqueued" if sent else "already_queued",
            "jobId": f"inventory-{project.pk}",
        }
        return Response(body, status=status.HTTP_202_ACCEPTED)
