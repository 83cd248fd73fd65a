"""Sign-in routes compatible with Auth.js (NextAuth v5) and its credentials provider.

Invariants:
- The CSRF token is double-submitted: the form field must equal the token in
  the ``authjs.csrf-token`` cookie, whose value is ``token|sha256(token +
  secret)`` so a cookie forged without the secret key is rejected.
- A failed sign-in sets no cookie. Redirects go only to this site's origin.
- A throttled client gets 429 with Retry-After, whatever the password.
"""

import hashlib
import hmac
import html
import logging
import secrets
from datetime import datetime
from typing import Any
from urllib.parse import unquote, urlencode, urlsplit

from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.routing import Route

from domain.auth import ThrottlePolicy, end_session, issue_session, sign_in
from domain.errors import RateLimited, Unauthenticated
from ibhq.bodies import BodyTooLarge, loads_exact, read_body
from ibhq.context import Services, request_context, services_of, set_cookie
from ibhq.settings import Settings
from resolvers.context import PendingCookie
from rest_compat.errors import error_response

logger = logging.getLogger(__name__)

PROVIDER_ID = "credentials"


async def csrf(request: Request) -> Response:
    settings = services_of(request).settings
    token = _valid_csrf_cookie(request, settings) or secrets.token_hex(32)
    response = JSONResponse({"csrfToken": token})
    _set_csrf_cookie(response, settings, token)
    return response


async def providers(request: Request) -> Response:
    base = services_of(request).settings.public_url + "/api/auth"
    return JSONResponse(
        {
            PROVIDER_ID: {
                "id": PROVIDER_ID,
                "name": "Credentials",
                "type": "credentials",
                "signinUrl": f"{base}/signin/{PROVIDER_ID}",
                "callbackUrl": f"{base}/callback/{PROVIDER_ID}",
            }
        }
    )


async def session(request: Request) -> Response:
    async with request_context(request) as context:
        viewer = context.viewer
        if viewer is None:
            response = JSONResponse(None)
        else:
            response = JSONResponse(
                {
                    "user": {
                        "id": str(viewer.user_id),
                        "name": viewer.name,
                        "email": viewer.email,
                        "role": viewer.role,
                        "tenantId": str(viewer.tenant_id),
                    },
                    "expires": _iso(viewer.session_expires_at),
                }
            )
        for cookie in context.effects.cookies:
            set_cookie(response, services_of(request).settings, cookie)
        response.headers["Cache-Control"] = "private, no-store"
        return response


async def callback_credentials(request: Request) -> Response:
    services = services_of(request)
    settings = services.settings
    try:
        form = await _form(request, settings)
    except BodyTooLarge as error:
        return error_response(413, str(error))
    wants_json = _wants_json(request, form)

    if not _csrf_matches(request, settings, form.get("csrfToken", "")):
        logger.info("sign-in rejected: CSRF token missing or invalid")
        return _redirect(_error_url(settings, "MissingCSRF"), wants_json=wants_json)

    try:
        cookie = await _check_credentials(services, request, form)
    except RateLimited as error:
        return error_response(
            429, error.message, headers={"Retry-After": str(error.retry_after_seconds)}
        )
    except Unauthenticated:
        failure = _signin_url(settings, error="CredentialsSignin", code="credentials")
        return _redirect(failure, wants_json=wants_json)

    target = _safe_callback(
        settings, form.get("callbackUrl") or _callback_cookie(request, settings)
    )
    response = _redirect(target, wants_json=wants_json)
    set_cookie(response, settings, cookie)
    return response


async def signout(request: Request) -> Response:
    services = services_of(request)
    settings = services.settings
    try:
        form = await _form(request, settings)
    except BodyTooLarge as error:
        return error_response(413, str(error))
    wants_json = _wants_json(request, form)
    if not _csrf_matches(request, settings, form.get("csrfToken", "")):
        return _redirect(_error_url(settings, "MissingCSRF"), wants_json=wants_json)

    token = request.cookies.get(settings.session_cookie_name)
    if token:
        async with services.sessions() as db, db.begin():
            await end_session(db, token)
    response = _redirect(
        _safe_callback(settings, form.get("callbackUrl")), wants_json=wants_json
    )
    set_cookie(response, settings, PendingCookie(settings.session_cookie_name, "", 0))
    return response


async def signin_page(request: Request) -> Response:
    """Render a plain sign-in form, for people who reach the flow in a browser."""
    settings = services_of(request).settings
    token = _valid_csrf_cookie(request, settings) or secrets.token_hex(32)
    error = request.query_params.get("error")
    notice = (
        '<p role="alert">Sign-in failed. Check your email and password.</p>'
        if error
        else ""
    )
    callback = html.escape(
        _safe_callback(settings, request.query_params.get("callbackUrl")), quote=True
    )
    page = SIGNIN_PAGE.format(notice=notice, csrf=token, callback=callback)
    response = HTMLResponse(page)
    _set_csrf_cookie(response, settings, token)
    return response


async def error_page(request: Request) -> Response:
    error = request.query_params.get("error", "Unknown")
    message = {
        "MissingCSRF": "The sign-in form expired. Load it again and retry.",
        "CredentialsSignin": "Sign-in failed. Check your email and password.",
    }.get(error, "Something went wrong while signing in.")
    return HTMLResponse(
        ERROR_PAGE.format(message=html.escape(message)), status_code=400
    )


async def unknown_action(request: Request) -> Response:
    return error_response(404, f"Unknown auth action '{request.path_params['action']}'")


def authjs_routes() -> list[Route]:
    return [
        Route("/api/auth/csrf", csrf, methods=["GET"]),
        Route("/api/auth/providers", providers, methods=["GET"]),
        Route("/api/auth/session", session, methods=["GET"]),
        Route("/api/auth/signin", signin_page, methods=["GET"]),
        Route(f"/api/auth/signin/{PROVIDER_ID}", signin_page, methods=["GET"]),
        Route("/api/auth/error", error_page, methods=["GET"]),
        Route(
            f"/api/auth/callback/{PROVIDER_ID}", callback_credentials, methods=["POST"]
        ),
        Route("/api/auth/signout", signout, methods=["POST"]),
    ]


def fallback_route() -> Route:
    return Route("/api/auth/{action:path}", unknown_action, methods=["GET", "POST"])


async def _check_credentials(
    services: Services, request: Request, form: dict[str, str]
) -> PendingCookie:
    settings = services.settings
    policy = ThrottlePolicy(
        window=settings.login_window,
        max_failures_per_email=settings.login_max_failures_per_email,
        max_failures_per_address=settings.login_max_failures_per_address,
    )
    now = services.clock.now()
    address = request.client.host if request.client else "unknown"
    async with services.sessions() as db:
        try:
            user = await sign_in(
                db,
                email=form.get("email", ""),
                password=form.get("password", ""),
                client_address=address,
                now=now,
                policy=policy,
            )
        except Unauthenticated:
            await db.commit()  # keep the failure counts
            raise
        issued = await issue_session(
            db, user, now=now, lifetime=settings.session_lifetime
        )
        await db.commit()
    logger.info("signed in user %s of tenant %s", user.id, user.tenant_id)
    return PendingCookie(
        settings.session_cookie_name,
        issued.token,
        int(settings.session_lifetime.total_seconds()),
    )


async def _form(request: Request, settings: Settings) -> dict[str, str]:
    """Read a form-encoded or JSON body into string fields; anything else is empty."""
    body = await read_body(request, settings.max_body_bytes)
    media_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media_type == "application/json":
        try:
            parsed: Any = loads_exact(body) if body.strip() else {}
        except (ValueError, RecursionError):
            return {}
        if not isinstance(parsed, dict):
            return {}
        return {
            key: str(value)
            for key, value in parsed.items()
            if isinstance(value, (str, int, bool))
        }
    if media_type == "application/x-www-form-urlencoded":
        form = await request.form()
        return {key: value for key, value in form.items() if isinstance(value, str)}
    return {}


def _wants_json(request: Request, form: dict[str, str]) -> bool:
    return bool(request.headers.get("x-auth-return-redirect")) or form.get("json") in (
        "true",
        "True",
    )


def _redirect(url: str, *, wants_json: bool) -> Response:
    if wants_json:
        return JSONResponse({"url": url})
    return RedirectResponse(url, status_code=302)


def _csrf_hash(token: str, settings: Settings) -> str:
    return hashlib.sha256(token.encode() + settings.signing_key).hexdigest()


def _valid_csrf_cookie(request: Request, settings: Settings) -> str | None:
    raw = unquote(request.cookies.get(settings.csrf_cookie_name, ""))
    token, _, digest = raw.partition("|")
    if not token or not digest:
        return None
    if not hmac.compare_digest(digest, _csrf_hash(token, settings)):
        return None
    return token


def _csrf_matches(request: Request, settings: Settings, submitted: str) -> bool:
    token = _valid_csrf_cookie(request, settings)
    return token is not None and hmac.compare_digest(token.encode(), submitted.encode())


def _set_csrf_cookie(response: Response, settings: Settings, token: str) -> None:
    response.set_cookie(
        settings.csrf_cookie_name,
        f"{token}|{_csrf_hash(token, settings)}",
        path="/",
        secure=settings.secure_cookies,
        httponly=True,
        samesite="lax",
    )


def _callback_cookie(request: Request, settings: Settings) -> str | None:
    return request.cookies.get(settings.callback_cookie_name)


def _safe_callback(settings: Settings, url: str | None) -> str:
    """Resolve a callback URL, keeping only targets on this site's own origin."""
    base = settings.public_url
    if not url:
        return base
    if url.startswith("/") and not url.startswith("//") and "\\" not in url:
        return base + url
    target, own = urlsplit(url), urlsplit(base)
    if (target.scheme, target.netloc) == (own.scheme, own.netloc):
        return url
    return base


def _signin_url(settings: Settings, **params: str) -> str:
    return f"{settings.public_url}/api/auth/signin?{urlencode(params)}"


def _error_url(settings: Settings, error: str) -> str:
    return f"{settings.public_url}/api/auth/error?{urlencode({'error': error})}"


def _iso(value: datetime) -> str:
    return value.isoformat(timespec="milliseconds").replace("+00:00", "Z")


SIGNIN_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Sign in to IBHQ</title></head>
<body>
<h1>Sign in</h1>
{notice}
<form method="post" action="/api/auth/callback/credentials">
  <input type="hidden" name="csrfToken" value="{csrf}">
  <input type="hidden" name="callbackUrl" value="{callback}">
  <label>Email <input type="email" name="email" required
    autocomplete="username"></label>
  <label>Password <input type="password" name="password" required
    autocomplete="current-password"></label>
  <button type="submit">Sign in</button>
</form>
</body></html>
"""

ERROR_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Sign-in error</title></head>
<body><h1>Sign-in error</h1><p>{message}</p>
<p><a href="/api/auth/signin">Back to sign in</a></p></body></html>
"""
