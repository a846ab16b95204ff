from __future__ import annotations

from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class InventoryConfig(AppConfig):
    name = "inventory"
    verbose_name = _("Inventory")
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from aimetrics.panels import register_dashboard_panel
        from inventory import receivers  # noqa: F401  (connects to photos' signals)
        from inventory.catalogue import DatabaseVolumeCatalogue
        from inventory.dashboard import accuracy_panel
        from photos.volumes import register_volume_catalogue

        register_volume_catalogue(DatabaseVolumeCatalogue())
        register_dashboard_panel(accuracy_panel)  # the model's accuracy on the AI dashboard
