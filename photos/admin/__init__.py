"""The staff console for photos, one module per admin and per kind of helper:

- `photo`: the photo admin (list, page, actions, image URLs);
- `actions`: what the photo actions do (queue through the API's services, count for one
  message), and `register_photo_action`, the extension point for other apps' actions;
- `filters`: list filters whose choices cost no query over the photos table;
- `views`: the staff-only original and thumbnail views;
- `detail`: the tables of a photo's page;
- `project`: a project's photos as its admin page shows them.

photos never imports inventory, so two things are inventory's: the Project admin
(`inventory/admin/project.py`: a project's page shows its photos and its inventory) and the photo
list's "Sync the project's inventory" action, which inventory registers here with
`register_photo_action`. Both keep the `photos` app label and URLs (`admin:photos_project_*`).
"""

from __future__ import annotations

from photos.admin.actions import register_photo_action
from photos.admin.photo import PhotoAdmin

__all__ = ["PhotoAdmin", "register_photo_action"]
