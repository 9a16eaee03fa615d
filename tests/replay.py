"""A tiny HTTP(S) server that answers with recorded vendor bodies, for the fidelity suite.

The connectors are pointed at it exactly as at the vendors (a HubSpot ``host``, a Salesforce
instance URL over TLS with its own CA), so a recorded body goes through the real clients'
deserialisation and our parsers unchanged. Requests no answer matches get a 599 whose body
names the request, so a test fails saying what the connector asked for.
"""

from __future__ import annotations

import json
import re
import ssl
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from sandbox.tls import ensure_tls_files


@dataclass
class Answer:
    """Answer ``method`` requests whose path matches ``path`` (a regex) with ``body``."""

    method: str
    path: str
    status: int
    body: Any
    headers: dict[str, str] = field(default_factory=dict)
    times: int | None = None  # None: every time; otherwise this many times, then the next


@dataclass
class Served:
    method: str
    path: str
    body: bytes


class Replay:
    """The running server: ``url``, the requests it ``served``, and the CA to trust."""

    def __init__(self, answers: list[Answer], ca: Path | None) -> None:
        self.answers = answers
        self.served: list[Served] = []
        self.ca = ca
        self.url = ""

    def pick(self, method: str, path: str) -> Answer | None:
        for answer in self.answers:
            if answer.method == method and re.fullmatch(answer.path + "/?", path.split("?")[0]):
                if answer.times is None:
                    return answer
                if answer.times > 0:
                    answer.times -= 1
                    return answer
        return None


def _handler(replay: Replay) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def _answer(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            sent = self.rfile.read(length) if length else b""
            replay.served.append(Served(self.command, self.path, sent))
            answer = replay.pick(self.command, self.path)
            if answer is None:
                status, body, headers = 599, {"unanswered": f"{self.command} {self.path}"}, {}
            else:
                status, body, headers = answer.status, answer.body, answer.headers
            headers = dict(headers)
            if isinstance(body, bytes):
                data = body
            elif isinstance(body, str):
                data = body.encode()
            else:
                data = json.dumps(body).encode()
            self.send_response(status)
            if status != 204:
                self.send_header("Content-Type", headers.pop("Content-Type", "application/json"))
                self.send_header("Content-Length", str(len(data)))
            for name, value in headers.items():
                self.send_header(name, value)
            self.end_headers()
            if status != 204:
                self.wfile.write(data)

        do_GET = do_POST = do_PATCH = do_PUT = do_DELETE = _answer

        def log_message(self, format: str, *args: Any) -> None:
            return

    return Handler


@contextmanager
def replaying(answers: list[Answer], tls_dir: Path | None = None) -> Iterator[Replay]:
    """Serve ``answers`` on a free local port (HTTPS with a local CA when ``tls_dir``)."""
    files = ensure_tls_files(tls_dir) if tls_dir is not None else None
    replay = Replay(answers, files.ca_cert if files else None)
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(replay))
    scheme = "http"
    if files is not None:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(files.server_cert, files.server_key)
        server.socket = context.wrap_socket(server.socket, server_side=True)
        scheme = "https"
    replay.url = f"{scheme}://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield replay
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
