"""Run both emulators in one process and write the settings a stagesync config needs.

``SandboxServer.start()`` serves them from a background thread (the pytest fixture uses it);
``run_forever()`` serves them until Ctrl-C (``stagesync sandbox start``). Both bind first, so the
ports are known before the settings file is written, and port 0 picks free ones.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import socket
import stat
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import uvicorn
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from sandbox.faults import FaultInjector
from sandbox.http import Call, EmulatorApp, Route, TransportExposingProtocol, json_response
from sandbox.hubspot.access import DEPLOYMENT_SCOPES, OAUTH_LIFETIME_SECONDS, Access
from sandbox.hubspot.app import SEARCH_PER_SECOND, RateLimiter
from sandbox.hubspot.app import build_app as build_hubspot
from sandbox.hubspot.portal import Portal
from sandbox.requestlog import RequestLog
from sandbox.salesforce.access import USER_PERMISSIONS, UserAccess
from sandbox.salesforce.app import Credentials
from sandbox.salesforce.app import build_app as build_salesforce
from sandbox.salesforce.org import Org
from sandbox.seed import SeedSizes, seed
from sandbox.tls import ensure_tls_files

SETTINGS_FILE = "sandbox.env"


DEFAULT_SEARCH_LAG_SECONDS = 3.0


@dataclass
class SandboxConfig:
    """How to run the sandbox. Ports of 0 pick free ones.

    The defaults answer as the live APIs do. Each departure from that is a named lenience a
    test must ask for (and say why): ``search_lag_seconds=0`` (HubSpot search sees writes at
    once), ``batch_trace_ids`` (batch results echo ``objectWriteTraceId``),
    ``batch_results_in_input_order``, ``case_insensitive_in`` (search ``IN`` folds the values'
    case), ``hubspot_creates_201`` (creates answer 201 as HubSpot's spec says; the live API was
    recorded answering 200, which hubspot-api-client v12 does not deserialize),
    ``default_lifecycle=False`` (no ``lead`` for a create without a lifecycle stage),
    ``calculated_touch=False`` (no calculated-property update a second after a create),
    ``duplicate_rule=False`` (Salesforce's standard Lead and Contact duplicate rules off). Rate
    limits are knobs too (``hubspot_per_ten_seconds=0`` turns the window off).
    """

    host: str = "127.0.0.1"
    salesforce_port: int = 0
    hubspot_port: int = 0
    seed: int = 7
    sizes: SeedSizes = field(default_factory=SeedSizes)
    faults: str = ""
    hubspot_per_ten_seconds: int = 100
    hubspot_search_per_second: int = SEARCH_PER_SECOND
    hubspot_daily_limit: int = 250_000  # Free and Starter accounts' daily allowance
    hubspot_time_zone: str = "UTC"
    hubspot_scopes: tuple[str, ...] = DEPLOYMENT_SCOPES
    hubspot_oauth_lifetime_seconds: float = OAUTH_LIFETIME_SECONDS
    search_lag_seconds: float = DEFAULT_SEARCH_LAG_SECONDS
    batch_trace_ids: bool = False
    batch_results_in_input_order: bool = False
    case_insensitive_in: bool = False
    hubspot_creates_201: bool = False  # lenience: creates answer 201, as HubSpot's spec says
    default_lifecycle: bool = True  # False: a contact or company created without a stage has none
    calculated_touch: bool = True  # False: HubSpot never updates calculated properties itself
    duplicate_rule: bool = True
    salesforce_daily_api_max: int = 1_000_000
    # the integration user's system permissions (default: all a deployment needs) and what it
    # is denied ("Task:create", "Lead:edit", "Lead.Status:read"; see sandbox.salesforce.access)
    salesforce_user_permissions: dict[str, bool] = field(
        default_factory=lambda: dict.fromkeys(USER_PERMISSIONS, True))
    salesforce_denied: tuple[str, ...] = ()
    # Lifecycle stages the portal defined itself: (id, label, the stage it follows). Not a
    # lenience: a portal setting, as in HubSpot, where admins may add stages.
    custom_lifecycle_stages: tuple[tuple[str, str, str], ...] = ()
    # Fields whose history the org tracks ("Lead.Title"): an org setting, none by default
    # (Set History Tracking is off until an admin turns it on per field).
    salesforce_field_history: tuple[str, ...] = ()
    state_dir: Path = field(default_factory=lambda: Path(".stagesync/sandbox"))


@dataclass
class SandboxInfo:
    """Where the running sandbox is and how to sign in to it."""

    salesforce_url: str
    hubspot_url: str
    ca_bundle: Path
    settings_file: Path
    credentials: Credentials
    hubspot_token: str
    jwt_key_file: Path
    seeded: dict[str, int]
    hubspot_oauth: Access | None = None  # the OAuth app's client id, secret and refresh token


def _jwt_key(directory: Path) -> tuple[Path, bytes]:
    """The connected app's signing key (private, for the client) and its public half."""
    path = directory / "jwt-key.pem"
    if not path.exists():
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        path.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
        path.chmod(0o600)
    private = serialization.load_pem_private_key(path.read_bytes(), password=None)
    public = private.public_key().public_bytes(serialization.Encoding.PEM,
                                               serialization.PublicFormat.SubjectPublicKeyInfo)
    return path, public


def _bind(host: str, port: int) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(2048)
    sock.setblocking(False)
    return sock


def common_admin_routes(log: RequestLog, faults: FaultInjector) -> list[Route]:
    """Request counts and fault configuration, on both emulators."""

    def requests(call: Call) -> Any:
        if call.method == "DELETE":
            log.reset()
        return json_response(log.snapshot())

    def configure_faults(call: Call) -> Any:
        body = call.json() or {}
        try:
            faults.configure(str(body.get("spec", "")))
        except ValueError as exc:
            return json_response({"error": str(exc)}, 400)
        return json_response({"spec": body.get("spec", "")})

    return [Route("GET", "/__sandbox/requests", "admin", requests),
            Route("DELETE", "/__sandbox/requests", "admin", requests),
            Route("POST", "/__sandbox/faults", "admin", configure_faults)]


class _SharedSignalsServer(uvicorn.Server):
    """A uvicorn server that leaves signals alone.

    uvicorn installs its own SIGINT/SIGTERM handlers per server in the main thread; with two
    servers the second would replace the first's and Ctrl-C would stop only one of them.
    ``SandboxServer.run_forever`` handles the signals once, for both.
    """

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


class SandboxServer:
    """Both emulators, their state, and the uvicorn servers that serve them."""

    def __init__(self, config: SandboxConfig) -> None:
        self.config = config
        state = config.state_dir
        state.mkdir(parents=True, exist_ok=True)
        self.tls = ensure_tls_files(state)
        self.jwt_key_file, public_key = _jwt_key(state)
        self._sf_sock = _bind(config.host, config.salesforce_port)
        self._hs_sock = _bind(config.host, config.hubspot_port)
        sf_port = self._sf_sock.getsockname()[1]
        hs_port = self._hs_sock.getsockname()[1]
        self.salesforce_url = f"https://{config.host}:{sf_port}"
        self.hubspot_url = f"http://{config.host}:{hs_port}"
        self.credentials = Credentials(
            client_id="stagesync-sandbox-" + secrets.token_hex(4),
            client_secret=secrets.token_urlsafe(24),
            username="integration@stagesync.sandbox",
            password=secrets.token_urlsafe(18),
            jwt_public_key_pem=public_key,
        )
        self.hubspot_token = "pat-sandbox-" + secrets.token_urlsafe(24)

        tracked: dict[str, set[str]] = {}
        for name in config.salesforce_field_history:
            sobject, _, fld = name.partition(".")
            tracked.setdefault(sobject, set()).add(fld)
        self.org = Org(duplicate_rule=config.duplicate_rule,
                       api_daily_max=config.salesforce_daily_api_max,
                       history_tracked={k: frozenset(v) for k, v in tracked.items()})
        # Seeded records predate the sandbox, so the search index already holds them: seed
        # without lag, then let later writes lag. HubSpot's own after-create work on them is
        # long done, so it is switched on only after seeding.
        self.portal = Portal(search_lag=0.0, default_lifecycle=False, calculated_touch=False)
        for stage_id, label, after in config.custom_lifecycle_stages:
            self.portal.add_lifecycle_stage(stage_id, label, after)
        self.seeded = seed(self.org, self.portal, config.seed, config.sizes)
        self.portal.search_lag = config.search_lag_seconds
        self.portal.default_lifecycle = config.default_lifecycle
        self.portal.calculated_touch = config.calculated_touch

        self.salesforce_log = RequestLog()
        self.hubspot_log = RequestLog()
        self.salesforce_faults = FaultInjector(config.faults, seed=config.seed)
        self.hubspot_faults = FaultInjector(config.faults, seed=config.seed + 1)
        self.limiter = RateLimiter(config.hubspot_per_ten_seconds,
                                   config.hubspot_search_per_second,
                                   daily=config.hubspot_daily_limit,
                                   time_zone=config.hubspot_time_zone)
        self.hubspot_access = Access(private_token=self.hubspot_token,
                                     scopes=set(config.hubspot_scopes),
                                     oauth_lifetime=config.hubspot_oauth_lifetime_seconds)
        self.salesforce_access = UserAccess(dict(config.salesforce_user_permissions),
                                            set(config.salesforce_denied))
        self.salesforce_app, self.salesforce = build_salesforce(
            self.org, self.credentials, self.salesforce_url, self.salesforce_faults,
            self.salesforce_log, self.salesforce_access)
        self.hubspot_app, self.hubspot = build_hubspot(
            self.portal, self.hubspot_token, self.limiter, self.hubspot_faults, self.hubspot_log,
            seed=config.seed, batch_trace_ids=config.batch_trace_ids,
            batch_results_in_input_order=config.batch_results_in_input_order,
            case_insensitive_in=config.case_insensitive_in, access=self.hubspot_access)
        self.hubspot.creates_201 = config.hubspot_creates_201
        self._add_admin(self.salesforce_app, self.salesforce_log, self.salesforce_faults)
        self._add_admin(self.hubspot_app, self.hubspot_log, self.hubspot_faults)
        self._servers: list[uvicorn.Server] = []
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self.info = SandboxInfo(self.salesforce_url, self.hubspot_url, self.tls.ca_cert,
                                state / SETTINGS_FILE, self.credentials, self.hubspot_token,
                                self.jwt_key_file, self.seeded, self.hubspot_access)
        # Warnings for the operator: a settings file found open to others and tightened.
        self.notices: list[str] = []
        self.write_settings(self.info.settings_file)

    @staticmethod
    def _add_admin(app: EmulatorApp, log: RequestLog, faults: FaultInjector) -> None:
        for route in common_admin_routes(log, faults):
            app._admin.append((route, route.compile()))

    def write_settings(self, path: Path) -> None:
        """The connection settings, as environment lines pydantic-settings reads (mode 0600)."""
        c = self.credentials
        lines = {
            "STAGESYNC_SALESFORCE__INSTANCE_URL": self.salesforce_url,
            "STAGESYNC_SALESFORCE__TOKEN_URL": f"{self.salesforce_url}/services/oauth2/token",
            "STAGESYNC_SALESFORCE__CA_BUNDLE": str(self.tls.ca_cert.resolve()),
            "STAGESYNC_SALESFORCE__AUTH__KIND": "password",
            "STAGESYNC_SALESFORCE__AUTH__CLIENT_ID": c.client_id,
            "STAGESYNC_SALESFORCE__AUTH__CLIENT_SECRET": c.client_secret,
            "STAGESYNC_SALESFORCE__AUTH__USERNAME": c.username,
            "STAGESYNC_SALESFORCE__AUTH__PASSWORD": c.password,
            "STAGESYNC_HUBSPOT__HOST": self.hubspot_url,
            "STAGESYNC_HUBSPOT__ACCESS_TOKEN": self.hubspot_token,
        }
        text = "# Written by `stagesync sandbox start`: connection settings for the sandbox.\n"
        text += "# JWT bearer instead of password: AUTH__KIND=jwt and AUTH__PRIVATE_KEY_FILE="
        text += f"{self.jwt_key_file.resolve()}\n"
        oauth = self.hubspot_access
        text += ("# HubSpot OAuth (expiring access tokens) instead of the private app token: "
                 "drop ACCESS_TOKEN and set\n"
                 f"#   STAGESYNC_HUBSPOT__OAUTH__CLIENT_ID={oauth.client_id}\n"
                 f"#   STAGESYNC_HUBSPOT__OAUTH__CLIENT_SECRET={oauth.client_secret}\n"
                 f"#   STAGESYNC_HUBSPOT__OAUTH__REFRESH_TOKEN={oauth.refresh_token}\n")
        text += "".join(f"{k}={v}\n" for k, v in lines.items())
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as handle:
            mode = stat.S_IMODE(os.fstat(fd).st_mode)
            if mode & 0o077:  # an existing file keeps its mode through O_CREAT: tighten it
                os.fchmod(fd, 0o600)
                self.notices.append(f"{path} was open to others (mode {mode:04o}) and holds "
                                    "secrets: set to 0600")
            handle.write(text)

    def _uvicorn(self, app: EmulatorApp, tls: bool) -> uvicorn.Server:
        kwargs: dict[str, Any] = {}
        if tls:
            kwargs = {"ssl_certfile": str(self.tls.server_cert),
                      "ssl_keyfile": str(self.tls.server_key)}
        config = uvicorn.Config(app, log_level="warning", access_log=False, lifespan="off",
                                http=TransportExposingProtocol, timeout_keep_alive=30,
                                backlog=2048, **kwargs)
        return _SharedSignalsServer(config)

    async def serve(self) -> None:
        self._servers = [self._uvicorn(self.salesforce_app, tls=True),
                         self._uvicorn(self.hubspot_app, tls=False)]
        await asyncio.gather(self._servers[0].serve(sockets=[self._sf_sock]),
                             self._servers[1].serve(sockets=[self._hs_sock]))

    def _new_loop(self) -> asyncio.AbstractEventLoop:
        try:
            import uvloop

            return uvloop.new_event_loop()
        except ImportError:  # pragma: no cover - uvloop ships with uvicorn[standard]
            return asyncio.new_event_loop()

    def start(self) -> SandboxInfo:
        """Serve from a daemon thread; returns once both ports answer."""
        def run() -> None:
            loop = self._new_loop()
            self._loop = loop
            asyncio.set_event_loop(loop)
            loop.run_until_complete(self.serve())
            loop.close()

        self._thread = threading.Thread(target=run, name="stagesync-sandbox", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            if len(self._servers) == 2 and all(s.started for s in self._servers):
                return self.info
            time.sleep(0.02)
        raise RuntimeError("the sandbox did not start within 15 seconds")

    def _abort_connections(self) -> None:
        """Drop open keep-alive connections: a TLS close would wait for the client's reply."""
        for server in self._servers:
            for connection in list(server.server_state.connections):
                transport = getattr(connection, "transport", None)
                if transport is not None:
                    transport.abort()

    def stop(self) -> None:
        for server in self._servers:
            server.should_exit = True
        if self._loop is not None and not self._loop.is_closed():
            with contextlib.suppress(RuntimeError):
                self._loop.call_soon_threadsafe(self._abort_connections)
        if self._thread is not None:
            self._thread.join(timeout=10)
        for sock in (self._sf_sock, self._hs_sock):
            with contextlib.suppress(OSError):
                sock.close()

    def run_forever(self, on_ready: Callable[[], None] | None = None) -> None:
        """Serve in the foreground until Ctrl-C or SIGTERM; ``on_ready`` runs once both listen."""
        import signal

        loop = self._new_loop()
        asyncio.set_event_loop(loop)
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, self._request_exit)

        async def announce() -> None:
            while not (len(self._servers) == 2 and all(s.started for s in self._servers)):
                await asyncio.sleep(0.02)
            if on_ready is not None:
                on_ready()

        async def main() -> None:
            await asyncio.gather(self.serve(), announce())

        try:
            loop.run_until_complete(main())
        finally:
            loop.close()

    def _request_exit(self) -> None:
        for server in self._servers:
            server.should_exit = True
        self._abort_connections()
