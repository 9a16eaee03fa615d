"""Connection settings, read from the environment or an env file (``STAGESYNC_*``).

Nested keys use ``__``: ``STAGESYNC_SALESFORCE__AUTH__KIND=jwt``. Auth is a discriminated union
on ``kind``; every secret is a ``SecretStr`` so it never shows in logs, errors or reprs.
The sandbox writes a complete file of these (``.stagesync/sandbox/sandbox.env``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_SALESFORCE_API_VERSION = "59.0"


class PasswordAuth(BaseModel):
    """OAuth 2.0 username-password flow (password includes any security token)."""

    kind: Literal["password"]
    client_id: str
    client_secret: SecretStr
    username: str
    password: SecretStr


class JwtBearerAuth(BaseModel):
    """OAuth 2.0 JWT bearer flow: a connected app's certificate and the user to act as."""

    kind: Literal["jwt"]
    client_id: str
    username: str
    private_key_file: Path
    audience: str = "https://login.salesforce.com"


class ClientCredentialsAuth(BaseModel):
    """OAuth 2.0 client credentials flow (My Domain token URL, run-as user set on the app)."""

    kind: Literal["client_credentials"]
    client_id: str
    client_secret: SecretStr


class SessionAuth(BaseModel):
    """An existing session id (for example from a Salesforce CLI login)."""

    kind: Literal["session"]
    session_id: SecretStr


SalesforceAuth = Annotated[
    PasswordAuth | JwtBearerAuth | ClientCredentialsAuth | SessionAuth,
    Field(discriminator="kind"),
]


class SalesforceSettings(BaseModel):
    token_url: str = "https://login.salesforce.com/services/oauth2/token"  # noqa: S105
    instance_url: str | None = None
    api_version: str = DEFAULT_SALESFORCE_API_VERSION
    ca_bundle: Path | None = None
    proxies: dict[str, str] = Field(default_factory=dict)
    timeout_seconds: float = 60.0
    auth: SalesforceAuth
    bulk_threshold: int = Field(50_000, description="reads larger than this use Bulk API 2.0")
    quota_stop_share: float = Field(0.75, gt=0, le=1,
                                    description="stop at this share of the daily API limit")
    daily_call_budget: int | None = Field(None, description="cap on this agent's own calls")
    lookback_seconds: float = Field(
        60.0, ge=0, description="re-read this far behind the watermark: long transactions "
        "commit with an earlier SystemModstamp")
    retry_attempts: int = 6
    full_id_check_hours: float = Field(
        24.0, gt=0, description="compare the full id lists this often: rows purged from the "
        "recycle bin or hard-deleted never show among the deletes")

    @field_validator("token_url", "instance_url")
    @classmethod
    def _https_only(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith("https://"):
            raise ValueError("Salesforce URLs must start with https:// (simple-salesforce and "
                             "Salesforce itself speak only HTTPS)")
        return value.rstrip("/") if value else value


class HubSpotSettings(BaseModel):
    host: str = "https://api.hubapi.com"
    access_token: SecretStr
    timeout_seconds: float = 60.0
    requests_per_ten_seconds: int = Field(100, ge=0, description="0 turns pacing off")
    searches_per_second: int = Field(5, ge=0, description="0 turns pacing off")
    search_lookback_seconds: float = Field(
        300.0, ge=0, description="re-read this far behind the watermark: search lags writes")
    retry_attempts: int = 6
    archive_pages_per_cycle: int = Field(
        20, ge=1, description="archived-record pages (100 each) read per cycle: HubSpot lists "
        "its archive only in id order, so a large archive is read a slice per cycle")
    full_id_check_hours: float = Field(
        24.0, gt=0, description="compare the full id lists this often: merged-away and "
        "purged records vanish without an archive entry")

    @field_validator("host")
    @classmethod
    def _strip(cls, value: str) -> str:
        return value.rstrip("/")


class ConnectionSettings(BaseSettings):
    """Everything needed to reach both systems."""

    model_config = SettingsConfigDict(env_prefix="STAGESYNC_", env_nested_delimiter="__",
                                      extra="ignore")

    salesforce: SalesforceSettings
    hubspot: HubSpotSettings


def load_settings(env_file: Path | None = None) -> ConnectionSettings:
    """Read settings from the environment, and from ``env_file`` when given."""
    if env_file is not None:
        return ConnectionSettings(_env_file=env_file)
    return ConnectionSettings()
