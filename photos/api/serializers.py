"""JSON shapes of the photos API. Field names are camelCase: the existing clients' contract."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.core.validators import RegexValidator
from rest_framework import serializers

from ai_engine.types import ROOM_TYPES
from photos.models import STAGE_PROGRESS, Photo, Project, Stage
from photos.rooms import ROOM_LABEL_MAX, room_type_key

ROOM_TYPE_CHOICES = list(ROOM_TYPES)


class RoomTypeField(serializers.ChoiceField):
    """A room type: our key, or its English or French name (`"salon"`, `"Salle de bain"`), stored
    as the key. The schema lists the keys."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(choices=ROOM_TYPE_CHOICES, **kwargs)

    def to_internal_value(self, data: Any) -> Any:
        if data == "" and self.allow_blank:
            return ""
        key = room_type_key(data) if isinstance(data, str) else None
        if key is None:
            raise serializers.ValidationError(
                f"{str(data)[:50]!r} is not a room type; send one of "
                f"{', '.join(ROOM_TYPE_CHOICES)} (or its English or French name)."
            )
        return key


class RoomLabelField(serializers.CharField):
    """The household's name for the room ("Chambre 2", "Salon"): photos of one project with the
    same label (case and spaces do not matter) are views of one room. Trimmed; at most
    ROOM_LABEL_MAX characters."""

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("max_length", ROOM_LABEL_MAX)
        kwargs.setdefault(
            "error_messages",
            {"max_length": f"A room label has at most {ROOM_LABEL_MAX} characters."},
        )
        super().__init__(trim_whitespace=True, **kwargs)


class RoomLabelOutput(serializers.CharField):
    """The room label as stored; null when the client gave none (a room of its own)."""

    def to_representation(self, value: Any) -> Any:
        return value or None


class ProjectSerializer(serializers.ModelSerializer[Project]):
    createdAt = serializers.DateTimeField(source="created_at", read_only=True)
    priority = serializers.ChoiceField(choices=Project.Priority.choices, read_only=True)

    class Meta:
        model = Project
        fields = ["id", "name", "createdAt", "priority"]
        read_only_fields = ["id"]


class PhotoCountsSerializer(serializers.Serializer[dict[str, int]]):
    PENDING = serializers.IntegerField()
    PROCESSING = serializers.IntegerField()
    DONE = serializers.IntegerField()
    ERROR = serializers.IntegerField()


class ProjectDetailSerializer(ProjectSerializer):
    photoCounts = PhotoCountsSerializer(source="photo_counts", read_only=True)

    class Meta(ProjectSerializer.Meta):
        fields = [*ProjectSerializer.Meta.fields, "photoCounts"]


class ProjectCreateSerializer(serializers.Serializer[Any]):
    # The pattern says in the schema what the field enforces: something besides whitespace (it is
    # trimmed) and no NUL (PostgreSQL cannot store it).
    name = serializers.CharField(
        max_length=200,
        trim_whitespace=True,
        validators=[
            RegexValidator(
                r"^[^\x00]*[^\x00\s][^\x00]*$",
                "The name must have a visible character and no NUL character.",
            )
        ],
    )
    priority = serializers.ChoiceField(
        choices=Project.Priority.choices,
        default=Project.Priority.NORMAL,
        help_text="`high` (staff tokens only; 403 otherwise): the project's photos go first.",
    )


class PhotoSerializer(serializers.ModelSerializer[Photo]):
    projectId = serializers.UUIDField(source="project_id", read_only=True)
    roomType = serializers.CharField(source="room_type", read_only=True, allow_null=True)
    room = RoomLabelOutput(source="room_label", read_only=True, allow_null=True)
    errorCode = serializers.CharField(source="error_code", read_only=True, allow_null=True)
    errorMessage = serializers.CharField(source="error_message", read_only=True, allow_null=True)
    processedAt = serializers.DateTimeField(source="processed_at", read_only=True, allow_null=True)
    createdAt = serializers.DateTimeField(source="created_at", read_only=True)
    updatedAt = serializers.DateTimeField(source="updated_at", read_only=True)
    stage = serializers.ChoiceField(choices=Stage.values, source="current_stage", read_only=True)
    progress = serializers.SerializerMethodField()

    class Meta:
        model = Photo
        fields = [
            "id",
            "projectId",
            "status",
            "roomType",
            "room",
            "analysis",
            "errorCode",
            "errorMessage",
            "attempts",
            "processedAt",
            "createdAt",
            "updatedAt",
            "stage",
            "progress",
        ]
        read_only_fields = fields

    def get_progress(self, instance: Photo) -> int:
        """0–100: queued 0, preparing 20, analysing 50, saving 80, done or error 100."""
        return STAGE_PROGRESS[instance.current_stage]

    def to_representation(self, instance: Photo) -> dict[str, Any]:
        """What the fields above output, written out: a ModelSerializer builds its fields anew
        for every instance (from the model's metadata, then a deep copy), which cost more than the
        photo's own read on every poll. The fields stay the schema; a test checks both agree."""
        return {
            "id": str(instance.id),
            "projectId": str(instance.project_id),
            "status": str(instance.status),
            "roomType": _str_or_none(instance.room_type),
            "room": instance.room_label or None,
            "analysis": instance.analysis,
            "errorCode": _str_or_none(instance.error_code),
            "errorMessage": _str_or_none(instance.error_message),
            "attempts": int(instance.attempts),
            "processedAt": _datetime_or_none(instance.processed_at),
            "createdAt": _DATETIME.to_representation(instance.created_at),
            "updatedAt": _DATETIME.to_representation(instance.updated_at),
            "stage": str(instance.current_stage),
            "progress": STAGE_PROGRESS[instance.current_stage],
        }


# DRF's own formatting of a datetime (ISO 8601 in the current time zone, "Z" for UTC).
_DATETIME = serializers.DateTimeField()


def _str_or_none(value: object) -> str | None:
    return None if value is None else str(value)


def _datetime_or_none(value: datetime | None) -> str | None:
    return None if value is None else _DATETIME.to_representation(value)


class ProjectPageSerializer(serializers.Serializer[Any]):
    """A cursor page: follow `next` (a full URL) until it is null."""

    next = serializers.URLField(allow_null=True)
    previous = serializers.URLField(allow_null=True)
    results = ProjectSerializer(many=True)


class PhotoPageSerializer(serializers.Serializer[Any]):
    """A cursor page: follow `next` (a full URL) until it is null."""

    next = serializers.URLField(allow_null=True)
    previous = serializers.URLField(allow_null=True)
    results = PhotoSerializer(many=True)


class PhotoEnvelopeSerializer(serializers.Serializer[Any]):
    photo = PhotoSerializer()
    jobId = serializers.CharField(required=False)


class PhotoUploadSerializer(serializers.Serializer[Any]):
    image = serializers.FileField(allow_empty_file=True)
    projectId = serializers.UUIDField()
    # A form has no null: an empty value means "detect the room" (as leaving it out does).
    roomType = RoomTypeField(required=False, allow_blank=True)
    room = RoomLabelField(required=False, allow_blank=True)
    enqueue = serializers.BooleanField(required=False, default=False)


class PhotoListQuerySerializer(serializers.Serializer[Any]):
    projectId = serializers.UUIDField(required=False)
    status = serializers.ChoiceField(choices=Photo.Status.values, required=False)


class EnqueueRequestSerializer(serializers.Serializer[Any]):
    photoId = serializers.UUIDField()
    roomType = RoomTypeField(required=False, allow_null=True)
    room = RoomLabelField(
        required=False,
        allow_null=True,
        allow_blank=True,
        help_text="Stored when this call queues the photo; empty or null keeps the label.",
    )
    force = serializers.BooleanField(required=False, default=False)
    userId = serializers.CharField(
        required=False, allow_null=True, allow_blank=True, help_text="Ignored (old clients)."
    )


class EnqueueResponseSerializer(serializers.Serializer[Any]):
    success = serializers.BooleanField()
    status = serializers.ChoiceField(
        choices=["enqueued", "already_queued", "already_processing", "already_done"]
    )
    jobId = serializers.CharField()
    photoId = serializers.UUIDField()
    queuePosition = serializers.ChoiceField(choices=["waiting", "active", "done"])


class ErrorSerializer(serializers.Serializer[Any]):
    """`{"error": "..."}`; validation errors add `fields`: the messages of each field."""

    error = serializers.CharField()
