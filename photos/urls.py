from __future__ import annotations

from django.urls import path

from photos.api.views import (
    PhotoDetailView,
    PhotoEnqueueView,
    PhotoListView,
    ProjectDetailView,
    ProjectListView,
)

urlpatterns = [
    path("api/projects", ProjectListView.as_view(), name="projects"),
    path("api/projects/<str:project_id>", ProjectDetailView.as_view(), name="project"),
    path("api/photos", PhotoListView.as_view(), name="photos"),
    path("api/photos/enqueue", PhotoEnqueueView.as_view(), name="photo-enqueue"),
    path("api/photos/<str:photo_id>", PhotoDetailView.as_view(), name="photo"),
]
