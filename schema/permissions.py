"""Permissions, declared on each field and mutation and checked before it resolves.

Every mutation must declare one of these; a schema test enforces it. A field
of an add-on module also declares its module, so a module that is turned off
returns FORBIDDEN from this one place.
"""

from typing import Any

from strawberry.extensions.field_extension import FieldExtension
from strawberry.permission import BasePermission, PermissionExtension
from strawberry.types import Info

from db.tenancy import scoped_session
from domain.billing import module_states
from domain.errors import Forbidden, Unauthenticated
from domain.referral_apply import find_tenant
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


class SignedWebhook(BasePermission):
    """A webhook call whose signature the REST layer has verified."""

    def has_permission(
        self, source: Any, info: Info[Context, None], **kwargs: Any
    ) -> bool:
        if not info.context.webhook_verified:
            raise Unauthenticated("This operation is only for signed webhook calls")
        return True


class ModuleEnabled(BasePermission):
    """The workspace has the add-on module switched on, and in trial or paid."""

    def __init__(self, module: str) -> None:
        self.module = module

    async def has_permission(
        self, source: Any, info: Info[Context, None], **kwargs: Any
    ) -> bool:
        context = info.context
        viewer = context.signed_in
        states = await context.loaders.module_states_by_tenant.load(viewer.tenant_id)
        if not states[self.module].active(context.now()):
            raise Forbidden(
                f"The {self.module} module is turned off for this workspace"
            )
        return True


class ModuleEnabledForSlug(BasePermission):
    """For a public field: the module is on in the workspace its input names.

    An unknown workspace passes, so that the resolver rejects it with the
    same message as any other unknown input.
    """

    def __init__(self, module: str) -> None:
        self.module = module

    async def has_permission(
        self, source: Any, info: Info[Context, None], **kwargs: Any
    ) -> bool:
        context = info.context
        slug = getattr(kwargs.get("input"), "tenant_slug", "")
        async with context.sessions() as db:
            tenant = await find_tenant(db, slug)
        if tenant is None:
            return True
        async with scoped_session(context.sessions, tenant.id) as db:
            states = await module_states(db, tenant.id, context.settings.billing)
        if not states[self.module].active(context.now()):
            raise Forbidden(
                f"The {self.module} module is turned off for this workspace"
            )
        return True


def allow(
    permission: type[BasePermission], *, module: str | None = None
) -> list[FieldExtension]:
    """Return the field extensions that enforce ``permission`` (and ``module``)."""
    checks: list[BasePermission] = [permission()]
    if module is not None and permission is Public:
        checks.append(ModuleEnabledForSlug(module))
    elif module is not None:
        checks.append(ModuleEnabled(module))
    return [PermissionExtension(permissions=checks, fail_silently=False)]


def declared_module(extensions: list[Any]) -> str | None:
    """Return the module a field's extensions require, if any; tests use it."""
    for extension in extensions:
        if isinstance(extension, PermissionExtension):
            for permission in extension.permissions:
                if isinstance(permission, (ModuleEnabled, ModuleEnabledForSlug)):
                    return permission.module
    return None
