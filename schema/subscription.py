"""The root Subscription type, served over graphql-transport-ws at /graphql."""

from collections.abc import AsyncGenerator

import strawberry
from strawberry.types import Info

from resolvers import billing
from resolvers.context import Context
from schema.billing import Payment
from schema.permissions import SignedIn, allow


@strawberry.type
class Subscription:
    @strawberry.subscription(
        extensions=allow(SignedIn),
        description="The payment now, then again each time its status changes.",
    )
    async def payment_updated(
        self, info: Info[Context, None], id: strawberry.ID
    ) -> AsyncGenerator[Payment, None]:
        async for row in billing.payment_updates(info.context, id):
            yield Payment.from_row(row, info.context.now())
