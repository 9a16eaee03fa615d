"""``BENCH_PROFILE=<folder>``: the measured part of a benchmark runs under cProfile and its
stats go to ``<folder>/<name>.prof`` (where the time goes, for a closing note or a fix)."""

from __future__ import annotations

import contextlib
import cProfile
import os
from collections.abc import Iterator
from pathlib import Path


@contextlib.contextmanager
def profiled(name: str) -> Iterator[None]:
    folder = os.environ.get("BENCH_PROFILE")
    if not folder:
        yield
        return
    profile = cProfile.Profile()
    profile.enable()
    try:
        yield
    finally:
        profile.disable()
        Path(folder).mkdir(parents=True, exist_ok=True)
        profile.dump_stats(str(Path(folder) / f"{name}.prof"))
        print(f"# profile of {name}: {Path(folder) / f'{name}.prof'}", flush=True)
