"""Run the sandbox in its own process for a benchmark, as `stagesync sandbox start` would, so
the process under measurement does not share a core's GIL with the server."""

from __future__ import annotations

import contextlib
import multiprocessing
import resource
import signal
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from queue import Empty
from tempfile import TemporaryDirectory
from typing import Any


def _serve(state_dir: str, options: dict[str, Any], queue: Any) -> None:
    from sandbox.server import SandboxConfig, SandboxServer

    server = SandboxServer(SandboxConfig(state_dir=Path(state_dir), **options))
    server.run_forever(on_ready=lambda: queue.put(str(server.info.settings_file)))


@contextlib.contextmanager
def sandbox_process(**options: Any) -> Iterator[Path]:
    """Start a sandbox with ``SandboxConfig`` options; yields its settings file."""
    ctx = multiprocessing.get_context("spawn")
    queue = ctx.Queue()
    with TemporaryDirectory() as state:
        process = ctx.Process(target=_serve, args=(state, options, queue), daemon=True)
        process.start()
        try:
            yield Path(queue.get(timeout=120))
        finally:
            process.terminate()
            process.join(10)


def settings_lines(path: Path) -> dict[str, str]:
    return dict(line.split("=", 1) for line in path.read_text().splitlines()
                if line and not line.startswith("#"))


def _fresh(target: Callable[..., Any], args: tuple[Any, ...]) -> None:
    # A SIGTERM unwinds the child like an exception, so its own sandbox is stopped too.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    target(*args)


def in_fresh_process(target: Callable[..., Any], *args: Any,
                     timeout: float = 12 * 3600) -> Any:
    """``target(*args, queue)`` in a new (spawned) process; returns what it put on ``queue``.
    A fresh process starts with its own peak RSS, so sizes run one after another do not
    inherit each other's high-water mark."""
    ctx = multiprocessing.get_context("spawn")
    queue = ctx.Queue()
    child = ctx.Process(target=_fresh, args=(target, (*args, queue)))
    child.start()
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            with contextlib.suppress(Empty):
                return queue.get(timeout=2)
            if not child.is_alive():
                with contextlib.suppress(Empty):
                    return queue.get(timeout=5)  # put just before it exited
                raise RuntimeError(f"{target.__name__} exited with code {child.exitcode}")
        raise TimeoutError(f"{target.__name__} took more than {timeout:.0f} s")
    finally:
        child.join(60)
        if child.is_alive():
            child.terminate()
            child.join(60)


def peak_rss_mb() -> float:
    """This process's own peak RSS (``VmHWM``, which exec resets; ``ru_maxrss`` would carry
    the parent's over on Linux)."""
    return _status_mb("VmHWM")


def rss_mb() -> float:
    return _status_mb("VmRSS")


def _status_mb(key: str) -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(f"{key}:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
