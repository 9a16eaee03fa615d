"""Every request passes here first: the token, the CSRF check on every POST, the Host header,
and the headers that keep a page from being framed or from loading anything foreign.

- Token set: a request carries it as ``Authorization: Bearer <token>``, or carries the cookie
  the login form set (an HMAC of the browser's session under a key this process drew at start,
  so the cookie never holds the token and a restart signs everyone out). Compared in constant
  time. A page asked for without it redirects to the login form; ``/healthz``, ``/metrics`` and
  anything but a page get 401. The token is never logged or rendered.
- No token (loopback only, see ``access.check_bind``): the Host header must name this machine,
  so a web page that rebinds its own domain to 127.0.0.1 reaches nothing (DNS rebinding).
- Every POST carries the CSRF token of its session (an HMAC of the session cookie) in its form;
  any other POST is 403. The session cookie is HttpOnly and SameSite=Strict.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import secrets
from collections.abc import Awaitable, Callable, MutableMapping
from http.cookies import CookieError, SimpleCookie
from typing import Any
from urllib.parse import quote

from pydantic import SecretStr
from starlette.datastructures import Headers
from starlette.requests import Request
from starlette.responses import PlainTextResponse, RedirectResponse, Response

from sync_agent.console.access import LOOPBACK_NAMES

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
App = Callable[[Scope, Receive, Send], Awaitable[None]]

SESSION_COOKIE = "stagesync_session"
AUTH_COOKIE = "stagesync_auth"
CSRF_FIELD = "csrf"
SESSION_KEY = "stagesync.session"  # the scope key the session id is kept under
MAX_POST_BYTES = 2 * 1024 * 1024  # a mapping file is at most 1 MiB (mapping.limits)
OPEN_PATHS = ("/login", "/static/")  # reachable before signing in
MACHINE_PATHS = ("/healthz", "/metrics")  # answered 401, never redirected
PAGE_HEADERS = {
    "content-security-policy": "default-src 'none'; style-src 'self'; img-src 'self' data:; "
                               "form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
    "x-content-type-options": "nosniff",
    "x-frame-options": "DENY",
    "referrer-policy": "no-referrer",
    "cache-control": "no-store",
}


class Guard:
    """ASGI middleware: the rules above, around the console's app."""

    def __init__(self, app: App, token: SecretStr | None) -> None:
        self.app = app
        self.token = token
        self.key = secrets.token_bytes(32)  # signs sessions' CSRF and sign-in cookies

    # -- derived values -------------------------------------------------------------------
    def _sign(self, purpose: str, session: str) -> str:
        return hmac.new(self.key, f"{purpose}:{session}".encode(), hashlib.sha256).hexdigest()

    def csrf_token(self, session: str) -> str:
        return self._sign("csrf", session)

    def auth_cookie(self, session: str) -> str:
        return self._sign("auth", session)

    def token_matches(self, offered: str) -> bool:
        assert self.token is not None
        return hmac.compare_digest(offered.encode(), self.token.get_secret_value().encode())

    # -- the middleware ---------------------------------------------------------------------
    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        path: str = scope["path"]
        machine = path in MACHINE_PATHS
        if self.token is None and not _loopback_host(headers.get("host", "")):
            await _plain(403, "this console answers only to its loopback address "
                         "(127.0.0.1 or localhost)")(scope, receive, send)
            return
        cookies = _cookies(headers)
        session = cookies.get(SESSION_COOKIE)
        fresh = session is None or len(session) != 43
        if fresh:
            session = secrets.token_urlsafe(32)
        assert session is not None
        scope[SESSION_KEY] = session
        scope["stagesync.guard"] = self
        if self.token is not None and not path.startswith(OPEN_PATHS) and not self._signed_in(
                headers, cookies, session):
            if machine or scope["method"] not in ("GET", "HEAD"):
                response: Response = _plain(401, "the console's token is required "
                                            "(Authorization: Bearer, or sign in at /login)")
                response.headers["www-authenticate"] = 'Bearer realm="stagesync"'
            else:
                target = path + (f"?{scope['query_string'].decode()}"
                                 if scope.get("query_string") else "")
                response = RedirectResponse(f"/login?next={quote(target, safe='')}", 303)
            await self._respond(response, scope, receive, send, session if fresh else None)
            return
        if scope["method"] == "POST":
            body = await _read_body(receive)
            if body is None:
                await _plain(413, "the form is too large (a mapping file is at most 1 MiB)")(
                    scope, receive, send)
                return
            receive = _replay(body)
            form = await Request(scope, _replay(body)).form()
            offered = form.get(CSRF_FIELD)
            if fresh or not isinstance(offered, str) or not hmac.compare_digest(
                    offered.encode(), self.csrf_token(session).encode()):
                await _plain(403, "the form's CSRF token is missing or stale: reload the page "
                             "and submit again")(scope, receive, send)
                return
        if machine:  # /healthz and /metrics keep their exact headers and bodies
            await self.app(scope, receive, send)
            return
        await self._respond(None, scope, receive, send, session if fresh else None)

    def _signed_in(self, headers: Headers, cookies: dict[str, str], session: str) -> bool:
        scheme, _, offered = headers.get("authorization", "").partition(" ")
        if scheme.lower() == "bearer" and offered and self.token_matches(offered.strip()):
            return True
        cookie = cookies.get(AUTH_COOKIE)
        return cookie is not None and hmac.compare_digest(cookie.encode(),
                                                          self.auth_cookie(session).encode())

    async def _respond(self, response: Response | None, scope: Scope, receive: Receive,
                       send: Send, new_session: str | None) -> None:
        """Run ``response`` (or the app) with the page headers and, for a new browser, its
        session cookie."""

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                raw = list(message.get("headers", []))
                present = {k.lower() for k, _ in raw}
                for name, value in PAGE_HEADERS.items():
                    if name.encode() not in present:
                        raw.append((name.encode(), value.encode()))
                if new_session is not None:
                    raw.append((b"set-cookie", session_cookie(new_session).encode()))
                message["headers"] = raw
            await send(message)

        await (response or self.app)(scope, receive, send_with_headers)



def session_cookie(value: str) -> str:
    return f"{SESSION_COOKIE}={value}; Path=/; HttpOnly; SameSite=Strict"


def auth_cookie_header(value: str) -> str:
    return f"{AUTH_COOKIE}={value}; Path=/; HttpOnly; SameSite=Strict"


def guard_of(request: Request) -> Guard:
    guard = request.scope["stagesync.guard"]
    assert isinstance(guard, Guard)
    return guard


def csrf_of(request: Request) -> str:
    """The CSRF token the page's forms carry."""
    return guard_of(request).csrf_token(request.scope[SESSION_KEY])


def _cookies(headers: Headers) -> dict[str, str]:
    jar: SimpleCookie = SimpleCookie()
    for raw in headers.getlist("cookie"):
        with contextlib.suppress(CookieError):  # a malformed cookie header is no session
            jar.load(raw)
    return {name: morsel.value for name, morsel in jar.items()}


def _loopback_host(host: str) -> bool:
    name = host.strip().lower()
    if name.startswith("["):
        name = name[1:].partition("]")[0]
    elif name.count(":") == 1:
        name = name.partition(":")[0]
    return name in LOOPBACK_NAMES or name.startswith("127.")


def _plain(status: int, text: str) -> Response:
    return PlainTextResponse(text + "\n", status)


async def _read_body(receive: Receive) -> bytes | None:
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            break
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > MAX_POST_BYTES:
            return None
        chunks.append(chunk)
        if not message.get("more_body", False):
            break
    return b"".join(chunks)


def _replay(body: bytes) -> Receive:
    sent = False

    async def receive() -> Message:
        nonlocal sent
        if sent:
            return {"type": "http.disconnect"}
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    return receive
