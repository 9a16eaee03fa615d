"""Failpoints: die like ``kill -9`` at a named point, to test crash recovery deterministically.

``STAGESYNC_FAILPOINT=cycle.write.hubspot.contacts#2`` makes the process exit at once (no
cleanup, no commit, exit status 137 as after SIGKILL) the second time it passes that point.
Unset, a failpoint costs one dictionary lookup. The crash tests use them to stop the agent
between a vendor write and the commit that records it, a window too narrow to hit with a real
signal every time.
"""

from __future__ import annotations

import os
from collections import Counter

ENV = "STAGESYNC_FAILPOINT"
_passed: Counter[str] = Counter()


def hit(name: str) -> None:
    wanted = os.environ.get(ENV)
    if not wanted:
        return
    point, _, times = wanted.partition("#")
    if point != name:
        return
    _passed[name] += 1
    if _passed[name] >= int(times or "1"):
        os._exit(137)
