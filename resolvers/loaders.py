"""Data loaders, built once per request so no cache outlives it or crosses tenants."""

import uuid
from collections.abc import Sequence
from dataclasses import dataclass

from aiodataloader import DataLoader
from sqlalchemy import select

from db.engine import RequestSession
from db.models import Activity, Commission, User
from domain.billing import BillingConfig, ModuleState, module_states
from domain.commissions import commissions_by_conversion
from domain.timeline import activities_by_lead


class ActivitiesByLeadLoader(DataLoader[uuid.UUID, list[Activity]]):
    def __init__(self, db: RequestSession) -> None:
        super().__init__()
        self.db = db

    async def batch_load_fn(self, keys: Sequence[uuid.UUID]) -> list[list[Activity]]:
        timelines = await activities_by_lead(self.db, list(keys))
        return [timelines[key] for key in keys]


class UsersByIdLoader(DataLoader[uuid.UUID, User | None]):
    """Loads members by id, removed ones included, so history keeps its authors."""

    def __init__(self, db: RequestSession) -> None:
        super().__init__()
        self.db = db

    async def batch_load_fn(self, keys: Sequence[uuid.UUID]) -> list[User | None]:
        result = await self.db.execute(select(User).where(User.id.in_(keys)))
        users = {user.id: user for user in result.scalars()}
        return [users.get(key) for key in keys]


class ModuleStatesByTenantLoader(DataLoader[uuid.UUID, dict[str, ModuleState]]):
    """Loads the module states of the request's workspace once per request."""

    def __init__(self, db: RequestSession, config: BillingConfig) -> None:
        super().__init__()
        self.db = db
        self.config = config

    async def batch_load_fn(
        self, keys: Sequence[uuid.UUID]
    ) -> list[dict[str, ModuleState]]:
        return [await module_states(self.db, key, self.config) for key in keys]


class CommissionsByConversionLoader(DataLoader[uuid.UUID, list[Commission]]):
    def __init__(self, db: RequestSession) -> None:
        super().__init__()
        self.db = db

    async def batch_load_fn(self, keys: Sequence[uuid.UUID]) -> list[list[Commission]]:
        grouped = await commissions_by_conversion(self.db, list(keys))
        return [grouped[key] for key in keys]


@dataclass(frozen=True, slots=True)
class Loaders:
    activities_by_lead: ActivitiesByLeadLoader
    users_by_id: UsersByIdLoader
    module_states_by_tenant: ModuleStatesByTenantLoader
    commissions_by_conversion: CommissionsByConversionLoader

    @classmethod
    def for_request(cls, db: RequestSession, billing: BillingConfig) -> "Loaders":
        return cls(
            activities_by_lead=ActivitiesByLeadLoader(db),
            users_by_id=UsersByIdLoader(db),
            module_states_by_tenant=ModuleStatesByTenantLoader(db, billing),
            commissions_by_conversion=CommissionsByConversionLoader(db),
        )
