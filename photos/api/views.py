"""HTTP adapters of the photos app: parse, call one service, shape the answer."""

from __future__ import annotations

import hashlib
import json
from typing import Any, cast

from django.conf import settings
from django.http import Http404
from django.utils.http import parse_etags, quote_etag
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import status
from rest_framework.parsers import FormParser, JSONParser, MultiPartParser
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from imaging.validation import ImageRejected
from infra.api import NewestFirstPagination
from infra.throttling import EnqueueRateThrottle, UploadRateThrottle
from photos.api.serializers import (
    EnqueueRequestSerializer,
    EnqueueResponseSerializer,
    ErrorSerializer,
    PhotoEnvelopeSerializer,
    PhotoListQuerySerializer,
    PhotoPageSerializer,
    PhotoSerializer,
    PhotoUploadSerializer,
    ProjectCreateSerializer,
    ProjectDetailSerializer,
    ProjectPageSerializer,
    ProjectSerializer,
)
from photos.lifecycle import photo_enqueue_for_user
from photos.models import Photo, Project
from photos.pace import poll_after_s
from photos.selectors import (
    photo_for_owner,
    photos_for_owner,
    project_for_owner,
    project_photo_counts,
)
from photos.services.uploads import PriorityDenied, photo_create, project_create

ERRORS = {400: ErrorSerializer, 401: ErrorSerializer, 404: ErrorSerializer}
# A body in a format the endpoint does not read (or no Content-Type at all).
UNSUPPORTED = {415: ErrorSerializer}
# Over the caller's rate: 429 with `Retry-After` (seconds).
THROTTLED = {429: ErrorSerializer}
RETRY_AFTER = OpenApiParameter(
    "Retry-After",
    int,
    OpenApiParameter.HEADER,
    response=[429],
    description="Seconds until the caller may send this request again.",
)
# The routes take any string and answer 404 for what is not one of the caller's ids: the schema
# says what a client must send (and keeps /api/photos/enqueue from looking like a photo id).
PROJECT_ID = OpenApiParameter("project_id", OpenApiTypes.UUID, OpenApiParameter.PATH)
PHOTO_ID = OpenApiParameter("photo_id", OpenApiTypes.UUID, OpenApiParameter.PATH)
PAGE_PARAMETERS = [
    OpenApiParameter("cursor", str, description="Opaque: from a page's `next` or `previous`."),
    OpenApiParameter("pageSize", int, description="Results per page (at most 200)."),
]


class ProjectListView(APIView):
    @extend_schema(
        parameters=PAGE_PARAMETERS,
        responses={200: ProjectPageSerializer, **ERRORS},
        operation_id="projects_list",
    )
    def get(self, request: Request) -> Response:
        """The caller's projects, newest first (cursor-paginated)."""
        paginator = NewestFirstPagination()
        page = paginator.paginate_queryset(
            Project.objects.filter(owner=request.user.pk), request, view=self
        )
        return paginator.get_paginated_response(ProjectSerializer(page, many=True).data)

    @extend_schema(
        request={"application/json": ProjectCreateSerializer},
        responses={201: ProjectSerializer, **ERRORS, 403: ErrorSerializer, **UNSUPPORTED},
    )
    def post(self, request: Request) -> Response:
        """Create a project owned by the caller; `priority: high` only with a staff token."""
        data = _valid(ProjectCreateSerializer, request.data)
        try:
            project = project_create(
                owner=request.user,  # type: ignore[arg-type]
                name=data["name"],
                priority=data["priority"],
            )
        except PriorityDenied as denied:
            return _error(str(denied), status.HTTP_403_FORBIDDEN)
        return Response(ProjectSerializer(project).data, status=status.HTTP_201_CREATED)


class ProjectDetailView(APIView):
    @extend_schema(parameters=[PROJECT_ID], responses={200: ProjectDetailSerializer, **ERRORS})
    def get(self, request: Request, project_id: str) -> Response:
        """One project with its photos counted by status."""
        project = project_for_owner(owner=request.user, project_id=project_id)
        project.photo_counts = project_photo_counts(project=project)  # type: ignore[attr-defined]
        return Response(ProjectDetailSerializer(project).data)


class PhotoListView(APIView):
    parser_classes = [MultiPartParser, FormParser]
    throttle_classes = [UploadRateThrottle]  # counts POSTs only

    @extend_schema(
        parameters=[
            OpenApiParameter(
                "projectId", OpenApiTypes.UUID, description="Only this project's photos."
            ),
            OpenApiParameter("status", str, enum=Photo.Status.values),
            *PAGE_PARAMETERS,
        ],
        responses={200: PhotoPageSerializer, **ERRORS},
        operation_id="photos_list",
    )
    def get(self, request: Request) -> Response:
        """The caller's photos, newest first, optionally filtered (cursor-paginated)."""
        filters = _valid(PhotoListQuerySerializer, request.query_params)
        photos = photos_for_owner(owner=request.user)
        if "projectId" in filters:
            project = project_for_owner(owner=request.user, project_id=filters["projectId"])
            photos = photos.filter(project=project)
        if "status" in filters:
            photos = photos.filter(status=filters["status"])
        paginator = NewestFirstPagination()
        page = paginator.paginate_queryset(photos, request, view=self)
        return paginator.get_paginated_response(PhotoSerializer(page, many=True).data)

    @extend_schema(
        request={"multipart/form-data": PhotoUploadSerializer},
        parameters=[RETRY_AFTER],
        responses={
            201: PhotoEnvelopeSerializer,
            413: ErrorSerializer,
            **ERRORS,
            **UNSUPPORTED,
            **THROTTLED,
        },
    )
    def post(self, request: Request) -> Response:
        """Upload a photo (JPEG, PNG or WebP); `enqueue=true` also queues its analysis."""
        data = _valid(PhotoUploadSerializer, request.data)
        project = project_for_owner(owner=request.user, project_id=data["projectId"])
        upload = data["image"]
        if upload.size > settings.UPLOAD_MAX_BYTES:
            return _error(
                f"The file is {upload.size} bytes; the limit is {settings.UPLOAD_MAX_BYTES} bytes.",
                status.HTTP_413_REQUEST_ENTITY_TOO_LARGE,
            )
        try:
            photo, queued = photo_create(
                project=project,
                data=upload.read(),
                room_type=data.get("roomType"),
                room=data.get("room"),
                enqueue=data["enqueue"],
            )
        except ImageRejected as rejected:
            return _error(rejected.message, rejected.status_code)
        body: dict[str, Any] = {"photo": PhotoSerializer(photo).data}
        if queued is not None:
            body["jobId"] = photo.job_id
        return Response(body, status=status.HTTP_201_CREATED)


POLL_HEADERS = [
    OpenApiParameter(
        "ETag", str, OpenApiParameter.HEADER, response=[200, 304],
        description="Send it back as `If-None-Match`: 304 while nothing changed.",
    ),
    OpenApiParameter(
        "Retry-After", int, OpenApiParameter.HEADER, response=[200, 304],
        description="While the photo is not finished: seconds until a poll is worth it.",
    ),
    OpenApiParameter(
        "If-None-Match", str, OpenApiParameter.HEADER,
        description="The ETag of the answer the client has.",
    ),
]  # fmt: skip


class PhotoDetailView(APIView):
    @extend_schema(
        parameters=[PHOTO_ID, *POLL_HEADERS],
        responses={
            200: PhotoEnvelopeSerializer,
            304: OpenApiResponse(description="Not modified since the ETag sent (no body)."),
            **ERRORS,
        },
    )
    def get(self, request: Request, photo_id: str) -> Response:
        """Poll one photo until its status is DONE or ERROR: with `If-None-Match`, a 304 while it
        has not changed; `Retry-After` says when to look again."""
        photo = photo_for_owner(owner=request.user, photo_id=photo_id)
        body = {"photo": PhotoSerializer(photo).data}
        digest = hashlib.md5(  # an ETag, not a secret
            json.dumps(body, sort_keys=True, separators=(",", ":")).encode(),
            usedforsecurity=False,
        ).hexdigest()
        headers = {"ETag": quote_etag(digest)}
        after = poll_after_s(photo)
        if after is not None:
            headers["Retry-After"] = str(after)
        sent = parse_etags(request.headers.get("If-None-Match", ""))
        if headers["ETag"] in sent or "*" in sent:
            return Response(status=status.HTTP_304_NOT_MODIFIED, headers=headers)
        return Response(body, headers=headers)


class PhotoEnqueueView(APIView):
    parser_classes = [JSONParser, FormParser, MultiPartParser]
    throttle_classes = [EnqueueRateThrottle]

    @extend_schema(
        # JSON is the contract; forms are still parsed for old clients (a form has no null).
        request={"application/json": EnqueueRequestSerializer},
        parameters=[RETRY_AFTER],
        responses={202: EnqueueResponseSerializer, **ERRORS, **UNSUPPORTED, **THROTTLED},
    )
    def post(self, request: Request) -> Response:
        """Queue a photo's analysis. Idempotent: only one message is ever waiting per photo."""
        data = _valid(EnqueueRequestSerializer, request.data)
        photo = Photo(id=data["photoId"])  # the id only: the owner check is in the UPDATE
        try:
            result = photo_enqueue_for_user(
                user_id=cast(int, request.user.pk),  # IsAuthenticated: a saved user
                photo_id=photo.pk,
                room_type=data.get("roomType"),
                room=data.get("room"),
                force=data["force"],
            )
        except Photo.DoesNotExist:
            raise Http404("No such photo.") from None
        body = {
            "success": True,
            "status": result.status.value,
            "jobId": photo.job_id,
            "photoId": str(photo.pk),
            "queuePosition": result.queue_position.value,
        }
        return Response(body, status=status.HTTP_202_ACCEPTED)


def _valid(serializer_class: type, data: Any) -> dict[str, Any]:
    serializer = serializer_class(data=data)
    serializer.is_valid(raise_exception=True)
    return dict(serializer.validated_data)


def _error(message: str, status_code: int) -> Response:
    return Response({"error": message}, status=status_code)
