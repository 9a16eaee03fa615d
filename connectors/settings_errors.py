"""Settings errors as an operator reads them: the ``STAGESYNC_*`` key, the reason, the fix.

pydantic reports a location such as ``('salesforce', 'auth', 'password', 'password')``: the
third part is the tag of the discriminated union (``auth.kind``), not a key anyone can set.
Keys are named by walking the settings models, so the line names the variable to edit.
Inputs are never echoed (the models hide them): they may be secrets.
"""

from __future__ import annotations

import inspect
import typing
from collections.abc import Sequence

from pydantic import BaseModel, ValidationError

from connectors.config import ConnectionSettings


def _model_in(annotation: object) -> type[BaseModel] | None:
    """The settings model a field holds (through ``X | None``), if any."""
    if inspect.isclass(annotation) and issubclass(annotation, BaseModel):
        return annotation
    for arg in typing.get_args(annotation):
        found = _model_in(arg)
        if found is not None:
            return found
    return None


def env_key(loc: Sequence[int | str]) -> tuple[str, bool]:
    """The environment variable a pydantic error location stands for, and whether it names a
    whole section (``STAGESYNC_HUBSPOT``) rather than one value."""
    model: type[BaseModel] | None = ConnectionSettings
    parts: list[str] = []
    skip_tag = False
    section = True
    for item in loc:
        if skip_tag:  # the union member's tag, which pydantic adds to the location
            skip_tag = False
            continue
        parts.append(str(item))
        field = model.model_fields.get(str(item)) if model is not None else None
        if field is None:
            model, section = None, False
            continue
        skip_tag = field.discriminator is not None
        model = None if skip_tag else _model_in(field.annotation)
        section = model is not None
    return "STAGESYNC_" + "__".join(parts).upper(), section


def describe_settings_errors(exc: ValidationError, source: str) -> list[str]:
    """One line a problem: ``KEY: reason (fix: ...)``; ``source`` says where settings come
    from (an env file's path, or "the environment")."""
    lines = []
    for problem in exc.errors():
        key, section = env_key(problem["loc"])
        reason = str(problem["msg"]).removeprefix("Value error, ")
        tag = str((problem.get("ctx") or {}).get("discriminator", "")).strip("'")
        if problem["type"] in ("union_tag_invalid", "union_tag_not_found") and tag:
            key, section = f"{key}__{tag.upper()}", False  # e.g. ..._AUTH__KIND
        if problem["type"] == "missing":
            reason = "missing"
            fix = (f"add the {key}__* settings to {source}" if section
                   else f"add {key}=... to {source}")
        else:
            fix = (f"correct the {key}__* settings in {source}" if section
                   else f"correct {key} in {source}")
        lines.append(f"{key}: {reason} (fix: {fix})")
    return lines
