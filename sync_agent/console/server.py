"""Serving an ASGI app with uvicorn in a thread of this process.

The socket is bound here, before the thread starts, so a taken port is an ``OSError`` in the
caller (``stagesync run`` turns it into one line); uvicorn would log it and ``sys.exit`` inside
its thread instead. uvicorn installs no signal handlers off the main thread, so SIGTERM and
SIGINT stay the agent's; its access log is off (a request line is not worth a log line, and a
query string may hold an email), its start and stop notes are quiet (warnings and errors
still reach the process's JSON log), and it leaves the process's logging set-up alone.
"""

from __future__ import annotations

import logging
import socket
import threading
import time
from dataclasses import dataclass

import uvicorn
from starlette.types import ASGIApp

STOP_WAIT_SECONDS = 5.0


@dataclass
class RunningServer:
    server: uvicorn.Server
    thread: threading.Thread
    host: str
    port: int  # the bound port (port 0 picks a free one)

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}/"

    def shutdown(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=STOP_WAIT_SECONDS)


def bind(host: str, port: int) -> socket.socket:
    """A listening socket on ``host:port``; ``OSError`` when it cannot be had."""
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    family, kind, proto, _, address = infos[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        sock.bind(address)
        sock.listen(128)
    except OSError:
        sock.close()
        raise
    sock.set_inheritable(True)
    return sock


def serve_in_thread(app: ASGIApp, host: str, port: int, name: str = "stagesync-http"
                    ) -> RunningServer:
    """Bind, start serving ``app`` in a daemon thread, and return once it accepts requests."""
    sock = bind(host, port)
    for name_ in ("uvicorn", "uvicorn.error"):  # "Started server process" and the like
        logging.getLogger(name_).setLevel(logging.WARNING)
    config = uvicorn.Config(app, log_config=None, access_log=False, lifespan="off",
                            server_header=False, timeout_graceful_shutdown=2)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, name=name,
                              daemon=True)
    thread.start()
    deadline = time.monotonic() + STOP_WAIT_SECONDS
    while not server.started and thread.is_alive() and time.monotonic() < deadline:
        time.sleep(0.01)
    return RunningServer(server, thread, host, int(sock.getsockname()[1]))
