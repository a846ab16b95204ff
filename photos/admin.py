"""Minimal admin for photos and projects (the full staff console is a later issue)."""

from __future__ import annotations

from django.contrib import admin

from photos.models import Photo, Project


@admin.register(Project)
class ProjectAdmin(admin.ModelAdmin[Project]):
    list_display = ["name", "owner", "created_at"]
    list_select_related = ["owner"]
    search_fields = ["name", "owner__username", "id"]
    readonly_fields = ["id", "created_at"]


@admin.register(Photo)
class PhotoAdmin(admin.ModelAdmin[Photo]):
    list_display = [
        "id",
        "project",
        "status",
        "room_type",
        "error_code",
        "attempts",
        "processed_at",
    ]
    list_filter = ["status", "error_code", "room_type"]
    list_select_related = ["project"]
    search_fields = ["id", "project__name"]
    readonly_fields = [
        "id",
        "status",
        "analysis",
        "error_code",
        "error_message",
        "attempts",
        "processed_at",
        "created_at",
        "updated_at",
    ]
    show_full_result_count = False
