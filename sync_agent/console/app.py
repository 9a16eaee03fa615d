"""The console's Starlette app: the pages, the actions (POSTs), and, under ``stagesync run``,
``/healthz`` and ``/metrics`` beside them, byte for byte as the agent always served them.

Pages are rendered on the server from Jinja2 templates with autoescaping on; there is no
JavaScript. Each page reads the state store when it is asked for (the store is the agent's
memory; the console keeps none of its own) and the mapping file from disk.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable
from dataclasses import dataclass
from importlib.resources import files
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape
from pydantic import SecretStr
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import Route

from mapping.model import MappingFile
from mapping.validate import check_file
from sync_agent.console import pages
from sync_agent.console.health import build_health
from sync_agent.console.mapping_view import build_diff, build_mapping
from sync_agent.console.retry import Retrier
from sync_agent.console.security import (
    CSRF_FIELD,
    Guard,
    auth_cookie_header,
    csrf_of,
    guard_of,
)
from sync_agent.console.weekly import OUTCOME_ORDER, build_weekly
from sync_agent.report import COLOURS, SIDES, build_report
from sync_agent.store import Store

Health = Callable[[], tuple[int, dict[str, Any]]]


@dataclass
class Console:
    """What the console works with. ``in_force``: the mapping a running agent loaded at its
    start (None for ``stagesync console``, which reads the file each time); ``retrier``: None
    when no connection settings were given (``retry_off`` says so on the page); ``health`` and
    ``metrics``: the agent's, served at ``/healthz`` and ``/metrics`` under ``stagesync run``."""

    store: Store
    mapping_path: Path | None  # None: /healthz and /metrics only, no pages
    token: SecretStr | None = None
    in_force: MappingFile | None = None
    retrier: Retrier | None = None
    retry_off: str | None = None
    health: Health | None = None
    metrics: Callable[[], str] | None = None
    stop_share: float | None = None  # Salesforce's quota stop, from the connection settings

    def mapping(self) -> MappingFile | str:
        """The mapping in force, or why there is none."""
        if self.in_force is not None:
            return self.in_force
        if self.mapping_path is None:
            return "no mapping file was given"
        parsed, problems = check_file(self.mapping_path)
        if parsed is None:
            errors = sum(1 for p in problems if p.severity == "error")
            return f"{self.mapping_path} has {errors} error(s): see the Mapping page"
        return parsed


def _environment() -> Environment:
    env = Environment(loader=PackageLoader("sync_agent.console", "templates"),
                      autoescape=select_autoescape(default=True, default_for_string=True),
                      undefined=StrictUndefined, trim_blocks=True, lstrip_blocks=True)
    env.filters["when"] = _when
    env.filters["ago"] = _ago
    env.filters["percent"] = _percent
    env.filters["span"] = _span
    env.filters["number"] = lambda n: f"{n:,}"
    env.globals.update(COLOURS=COLOURS, SIDES=SIDES, OUTCOME_ORDER=OUTCOME_ORDER)
    return env


def _when(value: dt.datetime | None) -> str:
    return "-" if value is None else value.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")


def _ago(value: dt.datetime | None, now: dt.datetime | None = None) -> str:
    """A span in the largest whole units an operator reads at a glance: 3 d 4 h, 5 h 10 min."""
    if value is None:
        return "-"
    seconds = max(((now or dt.datetime.now(dt.UTC)) - value).total_seconds(), 0)
    days, rest = divmod(int(seconds), 86400)
    hours, rest = divmod(rest, 3600)
    minutes = rest // 60
    if days:
        return f"{days} d {hours} h"
    if hours:
        return f"{hours} h {minutes} min"
    return f"{minutes} min"


def _span(value: dt.timedelta) -> str:
    """A duration as ``_ago`` says it."""
    moment = dt.datetime.now(dt.UTC)
    return _ago(moment - value, moment)


def _percent(value: float | None) -> str:
    return "-" if value is None else f"{value:.0%}"


def build_app(console: Console) -> Guard:
    """The console as an ASGI app, behind its guard (token, CSRF, Host, page headers)."""
    env = _environment()

    def render(request: Request, template: str, status: int = 200, **values: Any) -> Response:
        body = env.get_template(template).render(
            request=request, csrf=csrf_of(request), csrf_field=CSRF_FIELD,
            signed=console.token is not None, notice=request.query_params.get("notice"),
            page=template.removesuffix(".html"), now=dt.datetime.now(dt.UTC), **values)
        return HTMLResponse(body, status)

    def back(path: str, notice: str) -> RedirectResponse:
        joiner = "&" if "?" in path else "?"
        return RedirectResponse(f"{path}{joiner}notice={quote(notice)}", 303)

    # -- /healthz and /metrics, as the agent always served them ------------------------------
    def healthz(_request: Request) -> Response:
        assert console.health is not None
        status, body = console.health()
        return Response(json.dumps(body).encode(), status,
                        headers={"Content-Type": "application/json"})

    def metrics(_request: Request) -> Response:
        assert console.metrics is not None
        return Response(console.metrics().encode(), 200,
                        headers={"Content-Type": "text/plain; version=0.0.4"})

    # -- pages -------------------------------------------------------------------------------
    def home(_request: Request) -> Response:
        return RedirectResponse("/health", 303)

    def health(request: Request) -> Response:
        with console.store.session() as session:
            view = build_health(session, stop_share=console.stop_share)
        if console.health is not None:
            view.agent = console.health()[1]
        return render(request, "health.html", view=view, retry_off=console.retry_off)

    def funnel(request: Request) -> Response:
        mapping = console.mapping()
        if isinstance(mapping, str):
            return render(request, "unavailable.html", 409, title="Funnel", reason=mapping)
        with console.store.session() as session:
            report = build_report(session, mapping)
        return render(request, "funnel.html", report=report)

    def weekly(request: Request) -> Response:
        mapping = console.mapping()
        if isinstance(mapping, str):
            return render(request, "unavailable.html", 409, title="Weekly review",
                          reason=mapping)
        raw = request.query_params.get("week")
        day = None
        if raw:
            try:
                day = dt.date.fromisoformat(raw)
            except ValueError:
                return render(request, "unavailable.html", 400, title="Weekly review",
                              reason=f"week={raw!r} is not a date (fix: YYYY-MM-DD, any day "
                                     "of the week)")
        with console.store.session() as session:
            reviews = build_weekly(session, mapping, day)
        return render(request, "weekly.html", reviews=reviews, dt=dt)

    def mapping_page(request: Request) -> Response:
        assert console.mapping_path is not None
        view = build_mapping(console.mapping_path, console.in_force)
        return render(request, "mapping.html", view=view, proposal=None)

    async def mapping_diff(request: Request) -> Response:
        form = await request.form()
        upload = form.get("file")
        text, source = str(form.get("text") or ""), "pasted text"
        if isinstance(upload, UploadFile) and upload.filename:
            data = await upload.read()
            source = f"uploaded {upload.filename}"
            text = data.decode("utf-8-sig", errors="replace")
        if not text.strip():
            return back("/mapping", "paste a proposed mapping or choose a file to compare")
        path = console.mapping_path
        assert path is not None
        view, proposal = await run_in_threadpool(
            lambda: (build_mapping(path, console.in_force), build_diff(path, text, source)))
        return render(request, "mapping.html", view=view, proposal=proposal)

    # -- actions ---------------------------------------------------------------------------
    async def retry(request: Request) -> Response:
        raw = request.path_params.get("letter")
        if console.retrier is None:
            return back("/health", f"not retried: {console.retry_off}")
        done = await run_in_threadpool(console.retrier.retry,
                                       int(raw) if raw is not None else None)
        return back("/health", done)

    # -- signing in ------------------------------------------------------------------------
    def login_form(request: Request) -> Response:
        return render(request, "login.html", target=_local(request.query_params.get("next")),
                      failed=False)

    async def login(request: Request) -> Response:
        form = await request.form()
        guard = guard_of(request)
        target = _local(str(form.get("next") or ""))
        offered = str(form.get("token") or "").strip()
        if console.token is None or not guard.token_matches(offered):
            return render(request, "login.html", 401, target=target, failed=True)
        response = RedirectResponse(target, 303)
        response.headers.append("set-cookie", auth_cookie_header(
            guard.auth_cookie(request.scope["stagesync.session"])))
        return response

    async def logout(_request: Request) -> Response:
        response = RedirectResponse("/login", 303)
        response.headers.append("set-cookie", auth_cookie_header("") + "; Max-Age=0")
        return response

    def stylesheet(_request: Request) -> Response:
        css = files("sync_agent.console").joinpath("console.css").read_text(encoding="utf-8")
        return Response(css, 200, media_type="text/css")

    routes = [] if console.mapping_path is None else [
        Route("/", home), Route("/health", health), Route("/funnel", funnel),
        Route("/weekly", weekly), Route("/mapping", mapping_page),
        Route("/mapping/diff", mapping_diff, methods=["POST"]),
        Route("/dead-letters/retry", retry, methods=["POST"]),
        Route("/dead-letters/{letter:int}/retry", retry, methods=["POST"]),
        Route("/login", login_form), Route("/login", login, methods=["POST"]),
        Route("/logout", logout, methods=["POST"]),
        Route("/static/console.css", stylesheet),
        *pages.routes(console, render, back),
    ]
    if console.health is not None:
        routes.append(Route("/healthz", healthz))
    if console.metrics is not None:
        routes.append(Route("/metrics", metrics))
    app = Starlette(routes=routes)
    return Guard(app, console.token)


def _local(target: str | None) -> str:
    """Where to go after signing in: a path on this console only (never another site)."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/health"
    parts = urlsplit(target)
    if parts.scheme or parts.netloc:
        return "/health"
    return target
