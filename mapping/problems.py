"""A problem found in a mapping file: where (file, line, column, key), what, and the fix."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal


@dataclass(frozen=True)
class Problem:
    file: str
    line: int
    column: int
    key: str
    message: str
    fix: str
    severity: Literal["error", "warning"] = "error"

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}:{self.column}"
        return f"{where}: {self.severity}: {self.key or '(file)'}: {self.message} (fix: {self.fix})"
