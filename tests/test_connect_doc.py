"""docs/connect.md says what the code calls: every scope `check` verifies, every Salesforce
permission it checks, every custom field and property the default mapping needs (with the type
`check` prints), and only settings that exist."""

from __future__ import annotations

import re
import typing
from pathlib import Path

from pydantic import BaseModel

from connectors.config import ConnectionSettings
from connectors.hubspot_scopes import REQUIRED_SCOPES
from connectors.salesforce_permissions import OBJECT_NEEDS, USER_PERMISSIONS
from mapping.needs import needs
from mapping.validate import check_text
from sandbox.hubspot.schema import PROPERTIES

ROOT = Path(__file__).resolve().parents[1]
GUIDE = (ROOT / "docs" / "connect.md").read_text()


def test_every_scope_the_check_verifies_is_listed() -> None:
    for scope in REQUIRED_SCOPES:
        assert f"`{scope}`" in GUIDE, scope
    for obj in ("contacts", "companies", "deals"):  # init --create-fields only
        assert f"`crm.schemas.{obj}.write`" in GUIDE


def test_every_salesforce_permission_the_check_verifies_is_listed() -> None:
    for field, label in USER_PERMISSIONS.items():
        assert f"{label} (`{field}`)" in GUIDE
    for obj in OBJECT_NEEDS:
        assert re.search(rf"\b{obj}\b", GUIDE), obj


def test_every_custom_field_and_property_of_the_default_mapping_is_in_the_table() -> None:
    mapping, _ = check_text((ROOT / "mapping" / "default.yaml").read_text())
    assert mapping is not None
    custom_hubspot = {(o, n) for o, props in PROPERTIES.items() for n, p in props.items()
                      if not p.hubspot_defined}
    wanted = [n for n in needs(mapping, lambda system, obj: None)
              if (n.system == "salesforce" and n.custom)
              or (n.system == "hubspot" and (n.object, n.name) in custom_hubspot)]
    assert len(wanted) == 8
    rows = re.findall(r"^\| (Salesforce|HubSpot) \| (\w+) \| `(\w+)` \| ([^|]+) \|", GUIDE,
                      re.MULTILINE)
    table = {(system.lower(), obj, name): kind.strip() for system, obj, name, kind in rows}
    for need in wanted:
        key = (need.system, need.object, need.name)
        assert key in table, key
        assert table[key] == need.type_label(), (key, table[key])
    assert len(table) == len(wanted)


def test_every_setting_the_guide_names_exists() -> None:
    named = set(re.findall(r"STAGESYNC_[A-Z_]+[A-Z]", GUIDE))
    assert "STAGESYNC_SALESFORCE__AUTH__PRIVATE_KEY_FILE" in named
    for key in named:
        assert setting_exists(ConnectionSettings, key), key


def test_settings_keys_resolve_through_the_models() -> None:
    assert setting_exists(ConnectionSettings, "STAGESYNC_HUBSPOT__ACCOUNT_TIME_ZONE")
    assert not setting_exists(ConnectionSettings, "STAGESYNC_HUBSPOT__ACCOUNT_TIMEZONE")
    assert setting_exists(ConnectionSettings, "STAGESYNC_SALESFORCE__AUTH__KIND")


def models_in(annotation: object) -> list[type[BaseModel]]:
    """The settings models a field holds (through unions and ``Annotated``)."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    return [m for arg in typing.get_args(annotation) for m in models_in(arg)]


def setting_exists(model: type[BaseModel], key: str) -> bool:
    """Whether ``STAGESYNC_A__B__C`` names a field of the settings models (``__`` nests; an
    auth union's members are each tried)."""
    parts = key.removeprefix("STAGESYNC_").lower().split("__")
    candidates = [model]
    for index, part in enumerate(parts):
        fields = [m.model_fields[part] for m in candidates if part in m.model_fields]
        if not fields:
            return False
        if index == len(parts) - 1:
            return True
        candidates = [m for f in fields for m in models_in(f.annotation)]
    return False
