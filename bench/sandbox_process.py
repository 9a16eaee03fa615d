"""Run the sandbox in its own process for a benchmark, as `stagesync sandbox start` would, so
the process under measurement does not share a core's GIL with the server."""

from __future__ import annotations

import contextlib
import multiprocessing
from collections.abc import Iterator
from pathlib import Path
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
