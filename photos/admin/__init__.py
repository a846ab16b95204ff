"""The staff console for photos and projects, one module per admin and per kind of helper:

- `photo`: the photo admin (list, page, actions, image URLs);
- `project`: the project admin (photo counts by status);
- `actions`: what the photo actions do (queue through the API's services, count for one message);
- `filters`: list filters whose choices cost no query over the photos table;
- `views`: the staff-only original and thumbnail views;
- `detail`: the tables of a photo's page.

What inventory knows (the project's inventory sync, its snapshots) is added by
`inventory/admin.py`, which re-registers subclasses of these admins: photos never imports
inventory.
"""

from __future__ import annotations

from photos.admin.photo import PhotoAdmin
from photos.admin.project import ProjectAdmin

__all__ = ["PhotoAdmin", "ProjectAdmin"]
