"""Reading Set-Cookie headers in tests."""

from dataclasses import dataclass

import httpx


@dataclass(frozen=True, slots=True)
class SetCookie:
    name: str
    value: str
    # Attribute names are lowercased; flags such as HttpOnly map to "".
    attributes: dict[str, str]


def parse_set_cookie(header: str) -> SetCookie:
    first, *rest = (part.strip() for part in header.split(";"))
    name, _, value = first.partition("=")
    attributes: dict[str, str] = {}
    for part in rest:
        key, _, attribute_value = part.partition("=")
        attributes[key.lower()] = attribute_value
    return SetCookie(name=name, value=value, attributes=attributes)


def set_cookies(response: httpx.Response) -> dict[str, SetCookie]:
    """Return the cookies a response sets, by name."""
    parsed = [parse_set_cookie(h) for h in response.headers.get_list("set-cookie")]
    return {cookie.name: cookie for cookie in parsed}
