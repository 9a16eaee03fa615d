"""The Gaps and Record pages, on the shared ``gap_list`` and ``explain`` modules."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from starlette.routing import Route

if TYPE_CHECKING:
    from sync_agent.console.app import Console


def routes(console: Console, render: Callable[..., Any], back: Callable[..., Any]
           ) -> list[Route]:
    return []
