"""The Retry button: dead letters retried through ``sync_agent.dead_letters`` as the agent
and ``stagesync retry`` retry them, never by code of its own.

A retry writes to both systems and to the store, so it takes the cycle lock first, as
``stagesync sync once`` does: it never runs beside a cycle (the agent's, or another's on the
same store). Retrying one letter makes it due now and then retries what is due (any other
letter whose backoff has passed goes too, as it would in the next cycle); "Retry all" retries
every waiting letter.
"""

from __future__ import annotations

import datetime as dt
import os
import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import update

from connectors.contract import Connector
from connectors.errors import ConnectorError
from mapping.model import MappingFile
from sync_agent import state
from sync_agent.dead_letters import retry_dead_letters
from sync_agent.service import LOCK, describe_error
from sync_agent.store import Store
from sync_agent.tables import DeadLetter

LOCK_TTL = dt.timedelta(minutes=10)
Connectors = Callable[[], tuple[Connector, Connector]]
MappingSource = Callable[[], MappingFile | str]  # the mapping, or why there is none


@dataclass
class Retrier:
    """Retries with the connectors and mapping the console was started with."""

    store: Store
    connectors: Connectors
    mapping: MappingSource

    def __post_init__(self) -> None:
        self._one_at_a_time = threading.Lock()

    def retry(self, letter_id: int | None) -> str:
        """Retry one letter (``letter_id``) or all; what happened, as one sentence."""
        mapping = self.mapping()
        if isinstance(mapping, str):
            return f"not retried: {mapping}"
        holder = f"{socket.gethostname()}:{os.getpid()}:console"
        with self._one_at_a_time:
            if not state.acquire_lock(self.store, LOCK, holder, LOCK_TTL):
                return "not retried: a sync cycle is running on this store; try again when it "\
                       "is done"
            try:
                if letter_id is not None and not self._make_due(letter_id):
                    return f"dead letter {letter_id} is not waiting (already resolved?)"
                salesforce, hubspot = self.connectors()
                result = retry_dead_letters(self.store, mapping, salesforce, hubspot,
                                            letter_id is None)
            except ConnectorError as exc:
                return f"not retried: {describe_error(exc)}"
            finally:
                state.release_lock(self.store, LOCK, holder)
        return (f"retried {result.tried} dead letter(s): {result.resolved} resolved, "
                f"{result.failed} refused again (backed off), {result.gone} whose record no "
                "longer exists")

    def _make_due(self, letter_id: int) -> bool:
        with self.store.session() as session:
            changed = session.execute(update(DeadLetter).where(
                DeadLetter.id == letter_id, DeadLetter.resolved_at.is_(None)).values(
                next_retry_at=state.now()))
            session.commit()
        return bool(getattr(changed, "rowcount", 0))
