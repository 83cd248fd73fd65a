"""Paging of the product's lists: the same bounds and queries everywhere."""

from typing import Any, TypeVarTuple

from sqlalchemy import ColumnElement, Select, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from domain.errors import InvalidInput

MAX_PAGE_SIZE = 100

Columns = TypeVarTuple("Columns")


def check_paging(page: int, page_size: int) -> None:
    """Raise InvalidInput unless page is 1 or more and page_size 1 to 100."""
    if page < 1:
        raise InvalidInput("page must be 1 or more", field="page")
    if not 1 <= page_size <= MAX_PAGE_SIZE:
        raise InvalidInput(
            f"pageSize must be between 1 and {MAX_PAGE_SIZE}", field="pageSize"
        )


async def count_rows(
    session: AsyncSession, model: type[Any], conditions: list[ColumnElement[bool]]
) -> int:
    """Return how many rows of ``model`` meet every condition."""
    total = await session.scalar(
        select(func.count()).select_from(model).where(*conditions)
    )
    return total or 0


def one_page(
    statement: Select[*Columns], page: int, page_size: int
) -> Select[*Columns]:
    """Limit an ordered query to one page."""
    return statement.limit(page_size).offset((page - 1) * page_size)
