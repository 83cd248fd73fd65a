"""Permissions, declared on each field and mutation and checked before it resolves.

Every mutation must declare one of these; a schema test enforces it.
"""

from typing import Any

from strawberry.extensions.field_extension import FieldExtension
from strawberry.permission import BasePermission, PermissionExtension
from strawberry.types import Info

from domain.errors import Forbidden, Unauthenticated
from resolvers.context import Context


class Public(BasePermission):
    """Open to anyone, signed in or not: registration and public endpoints."""

    def has_permission(
        self, source: Any, info: Info[Context, None], **kwargs: Any
    ) -> bool:
        return True


class SignedIn(BasePermission):
    """Any member of the workspace: owner, admin or member. Reads use this."""

    def has_permission(
        self, source: Any, info: Info[Context, None], **kwargs: Any
    ) -> bool:
        if info.context.viewer is None:
            raise Unauthenticated()
        return True


class CanWrite(BasePermission):
    """An owner or admin of the workspace. Every write uses this."""

    def has_permission(
        self, source: Any, info: Info[Context, None], **kwargs: Any
    ) -> bool:
        viewer = info.context.viewer
        if viewer is None:
            raise Unauthenticated()
        if not viewer.can_write:
            raise Forbidden("This action needs the owner or admin role")
        return True


def allow(permission: type[BasePermission]) -> list[FieldExtension]:
    """Return the field extensions that enforce ``permission``."""
    return [PermissionExtension(permissions=[permission()], fail_silently=False)]
