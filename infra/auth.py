"""The API's token authentication (settings.REST_FRAMEWORK, DEFAULT_AUTHENTICATION_CLASSES).

Its own module: DRF imports authentication classes while `rest_framework.views` loads, so this
module must not import the views (infra.api does).
"""

from __future__ import annotations

from typing import Any

from django.contrib.auth import get_user_model
from django.utils.translation import gettext_lazy as _
from rest_framework import authentication, exceptions


class TokenAuthentication(authentication.TokenAuthentication):
    """DRF's `Authorization: Token <key>`, with the user read by the key in one statement.

    DRF reads the token row with its user joined in (`select_related`), a wider statement that the
    ORM builds anew on every API request. Nothing here reads the token row itself, so
    `request.auth` is the key.
    """

    def authenticate_credentials(self, key: str) -> tuple[Any, str]:
        user_model = get_user_model()
        try:
            user = user_model.objects.get(auth_token__key=key)
        except user_model.DoesNotExist:
            raise exceptions.AuthenticationFailed(_("Invalid token.")) from None
        if not user.is_active:
            raise exceptions.AuthenticationFailed(_("User inactive or deleted."))
        return user, key
