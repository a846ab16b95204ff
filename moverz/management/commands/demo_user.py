"""`manage.py demo_user`: the local demo staff user (demo/demo) and its API token."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError
from rest_framework.authtoken.models import Token


class Command(BaseCommand):
    help = "Create (or reuse) the demo staff user `demo` with password `demo`; print its API token."

    def handle(self, *args: Any, **options: Any) -> None:
        if not settings.DEBUG:
            raise CommandError("refusing to create a demo user with a known password: DEBUG is off")
        user, created = get_user_model().objects.get_or_create(
            username="demo", defaults={"is_staff": True, "is_superuser": True}
        )
        if created:
            user.set_password("demo")
            user.save()
        token, _ = Token.objects.get_or_create(user=user)
        self.stdout.write(token.key)
