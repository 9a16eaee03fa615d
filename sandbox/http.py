"""A small ASGI core shared by both emulators.

Each emulator is a table of named routes. Naming every endpoint lets one place count requests
(the request log), inject faults, enforce auth and rate limits, and render the vendor's own
error bodies for unknown paths, wrong methods and malformed JSON.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import socket
import struct
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, cast
from urllib.parse import parse_qs

from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Receive, Scope, Send
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from sandbox.faults import Fault, FaultInjector
from sandbox.requestlog import RequestLog


class TransportExposingProtocol(HttpToolsProtocol):
    """uvicorn's protocol, with the transport put in the ASGI scope.

    Only so that a ``reset`` fault can abort the TCP connection with an RST, which is what a
    client sees when a load balancer drops it; the ASGI spec offers no other way.
    """

    def on_message_begin(self) -> None:
        super().on_message_begin()
        scope = cast(dict[str, Any], self.scope)
        scope["extensions"] = {"sandbox.transport": self.transport}


def reset_connection(scope: Scope) -> bool:
    """Abort the connection behind ``scope`` with a TCP RST; False if that is not possible."""
    transport = scope.get("extensions", {}).get("sandbox.transport")
    if transport is None:
        return False
    sock = transport.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    transport.abort()
    return True


@dataclass
class Call:
    """One parsed request, as handlers see it."""

    method: str
    path: str
    params: dict[str, str]
    query: dict[str, list[str]]
    headers: Mapping[str, str]
    body: bytes
    endpoint: str
    context: dict[str, Any] = field(default_factory=dict)

    def arg(self, name: str, default: str | None = None) -> str | None:
        values = self.query.get(name)
        return values[0] if values else default

    def json(self) -> Any:
        """The body as JSON; raises ``MalformedJson`` with the parser's message."""
        try:
            return json.loads(self.body or b"null")
        except (ValueError, UnicodeDecodeError) as exc:
            raise MalformedJson(str(exc)) from exc


class MalformedJson(Exception):
    """The request body is not JSON."""


Handler = Callable[[Call], Response | Awaitable[Response]]


@dataclass(frozen=True)
class Route:
    method: str
    pattern: str
    endpoint: str
    handler: Handler
    public: bool = False

    def compile(self) -> re.Pattern[str]:
        regex = re.sub(r"\{(\w+)\}", r"(?P<\1>[^/]+)", self.pattern)
        return re.compile(f"^{regex}/?$")


def json_response(body: Any, status: int = 200,
                  headers: Mapping[str, str] | None = None) -> Response:
    return Response(
        json.dumps(body, separators=(",", ":")),
        status_code=status,
        headers=dict(headers or {}),
        media_type="application/json;charset=UTF-8",
    )


class Vendor:
    """What differs between the emulators: error bodies, auth, rate limits, fault answers."""

    def not_found(self, call: Call) -> Response:
        raise NotImplementedError

    def method_not_allowed(self, call: Call, allowed: list[str]) -> Response:
        raise NotImplementedError

    def malformed_json(self, call: Call, message: str) -> Response:
        raise NotImplementedError

    def authenticate(self, call: Call) -> Response | None:
        """None when the call may proceed, else the vendor's 401."""
        raise NotImplementedError

    def admit(self, call: Call) -> Response | None:
        """Rate limits and quotas: None to proceed, else the vendor's refusal."""
        return None

    def fault_response(self, call: Call, fault: Fault) -> Response:
        raise NotImplementedError

    def decorate(self, call: Call, response: Response) -> None:
        """Add headers every response carries (quota headers and the like)."""


class EmulatorApp:
    """ASGI app: route, count, inject faults, authenticate, admit, handle, decorate."""

    def __init__(
        self,
        vendor: Vendor,
        routes: list[Route],
        admin_routes: list[Route],
        faults: FaultInjector,
        log: RequestLog,
    ) -> None:
        self.vendor = vendor
        self.faults = faults
        self.log = log
        self._routes = [(route, route.compile()) for route in routes]
        self._admin = [(route, route.compile()) for route in admin_routes]

    def _match(
        self, table: list[tuple[Route, re.Pattern[str]]], method: str, path: str
    ) -> tuple[Route | None, dict[str, str], list[str]]:
        allowed: list[str] = []
        for route, regex in table:
            found = regex.match(path)
            if found is None:
                continue
            if route.method == method:
                return route, found.groupdict(), []
            allowed.append(route.method)
        return None, {}, allowed

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                elif message["type"] == "lifespan.shutdown":
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        request = Request(scope, receive)
        body = await request.body()
        path = scope["path"]
        method = scope["method"]
        query = parse_qs(scope.get("query_string", b"").decode("latin-1"), keep_blank_values=True)
        admin = path.startswith("/__sandbox/")
        route, params, allowed = self._match(self._admin if admin else self._routes, method, path)
        call = Call(
            method=method,
            path=path,
            params=params,
            query=query,
            headers=request.headers,
            body=body,
            endpoint=route.endpoint if route else "unknown",
        )
        if admin:
            response = await self._run(route, call, allowed) if route else json_response(
                {"error": f"no admin route {method} {path}"}, 404
            )
            await response(scope, receive, send)
            return

        fault = self.faults.pick(call.endpoint)
        if fault is not None and fault.kind == "slow":
            await asyncio.sleep(fault.delay)
            fault = None
        if fault is not None and fault.kind == "reset" and reset_connection(scope):
            self.log.record(call.endpoint, 0)
            return
        if fault is not None:
            response = self.vendor.fault_response(call, fault)
        else:
            response = await self._serve(route, call, allowed)
        self.vendor.decorate(call, response)
        self.log.record(call.endpoint, response.status_code)
        await response(scope, receive, send)

    async def _serve(self, route: Route | None, call: Call, allowed: list[str]) -> Response:
        if route is None:
            if allowed:
                return self.vendor.method_not_allowed(call, allowed)
            return self.vendor.not_found(call)
        if not route.public:
            refusal = self.vendor.authenticate(call) or self.vendor.admit(call)
            if refusal is not None:
                return refusal
        return await self._run(route, call, allowed)

    async def _run(self, route: Route | None, call: Call, allowed: list[str]) -> Response:
        assert route is not None
        try:
            result = route.handler(call)
            if asyncio.iscoroutine(result):
                result = await result
        except MalformedJson as exc:
            return self.vendor.malformed_json(call, str(exc))
        assert isinstance(result, Response)
        return result
