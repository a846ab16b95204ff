"""A project's inventory page in the admin, where staff correct its lines.

`ProjectAdmin` wires it at `admin/photos/project/<id>/inventory/` (`?photo=<id>`: only that
photo's room, and the corrections name the photo; the photo's page links there). It shows the
inventory as the next sync will write it (the photos' lines with every correction applied), a
small form per line (quantity, catalogue key, remove) and per room (add a line), and the
project's corrections. A POST is one correction through `correction_create`; bad input shows
the form's error and changes nothing. Viewing needs the project's view permission, correcting
the `add_inventorycorrection` permission too.
"""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import messages
from django.contrib.admin import ModelAdmin
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import render
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _

from infra.admin_tools import parse_uuid
from inventory.admin.corrections import corrections_url, line_change
from inventory.corrections import CorrectionError, correction_create, line_identity
from inventory.models import InventoryCorrection, VolumeCatalogueEntry
from inventory.services import inventory_rooms
from photos.models import Photo, Project
from photos.rooms import room_type_label

#: Corrections listed on the page (the list in the admin has them all).
CORRECTIONS_SHOWN = 50


class CorrectionForm(forms.Form):
    """One correction as the page posts it; `correction_create` checks it against the lines."""

    action = forms.ChoiceField(choices=InventoryCorrection.Action.choices)
    room = forms.CharField(max_length=255)
    line = forms.CharField(max_length=255, required=False)
    quantity = forms.IntegerField(label=_("quantity"), min_value=0, required=False)
    key = forms.CharField(label=_("catalogue key"), max_length=64, required=False)

    def clean_key(self) -> str:
        return str(self.cleaned_data.get("key") or "").strip()


def _photo(project: Project, request: HttpRequest) -> Photo | None:
    value = request.GET.get("photo") or request.POST.get("photo")
    if not value:
        return None
    photo_id = parse_uuid(value)
    photo = Photo.objects.filter(pk=photo_id, project=project).first() if photo_id else None
    if photo is None:
        raise Http404("no such photo in this project")
    return photo


def project_inventory_view(
    request: HttpRequest, object_id: str, *, model_admin: ModelAdmin[Project]
) -> HttpResponse:
    """GET: the page; POST: one correction, then back to the page (or the page with the error)."""
    project_id = parse_uuid(object_id)
    project = Project.objects.filter(pk=project_id).first() if project_id else None
    if project is None:
        raise Http404("no such project")
    if not model_admin.has_view_permission(request, project):
        raise PermissionDenied
    photo = _photo(project, request)
    form = None
    if request.method == "POST":
        if not request.user.has_perm("inventory.add_inventorycorrection"):
            raise PermissionDenied
        form = CorrectionForm(request.POST)
        if form.is_valid():
            data = form.cleaned_data
            try:
                correction = correction_create(
                    project=project,
                    room_group=data["room"],
                    action=data["action"],
                    line_key=data["line"],
                    quantity=data["quantity"],
                    new_key=data["key"],
                    photo=photo,
                    user=request.user,
                )
            except CorrectionError as error:
                form.add_error(error.field if error.field in form.fields else None, str(error))
            else:
                messages.success(
                    request,
                    gettext("Correction saved (%(change)s); the inventory is being synced.")
                    % {"change": line_change(correction)},
                )
                return HttpResponseRedirect(request.get_full_path())
    context = {
        **model_admin.admin_site.each_context(request),
        "title": gettext("Inventory of %(project)s") % {"project": project.name},
        "opts": model_admin.opts,
        "original": project,
        "project": project,
        "photo": photo,
        "form": form,
        "rooms": _rooms(project, photo),
        "catalogue": VolumeCatalogueEntry.objects.order_by("key").values_list(
            "key", "label_en", "volume_m3"
        ),
        "corrections": [
            (correction, line_change(correction))
            for correction in InventoryCorrection.objects.filter(project=project)
            .select_related("created_by")
            .order_by("-created_at", "-id")[:CORRECTIONS_SHOWN]
        ],
        "corrections_url": corrections_url(project.pk),
        "can_correct": request.user.has_perm("inventory.add_inventorycorrection"),
    }
    return render(request, "admin/inventory/project_inventory.html", context)


def _rooms(project: Project, photo: Photo | None) -> list[dict[str, Any]]:
    rooms = inventory_rooms(project_id=project.pk, record=False)
    if photo is not None:
        group = photo.room_group
        rooms = [(g, room) for g, room in rooms if g == group]
    return [
        {
            **room,
            "group": group,
            "type_label": room_type_label(room["roomType"]),
            "lines": [{**line, "identity": line_identity(line)} for line in room["items"]],
        }
        for group, room in rooms
    ]
