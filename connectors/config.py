"""Connection settings, read from the environment or an env file (``STAGESYNC_*``).

Nested keys use ``__``: ``STAGESYNC_SALESFORCE__AUTH__KIND=jwt``. Auth is a discriminated union
on ``kind``; every secret is a ``SecretStr`` so it never shows in logs, errors or reprs.
The sandbox writes a complete file of these (``.stagesync/sandbox/sandbox.env``).
"""

from __future__ import annotations

import ipaddress
import ssl
from pathlib import Path
from typing import Annotated, Literal
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, SettingsConfigDict

from connectors.files import NotReadable, read_regular_file
from connectors.settings_file import read_env_file

DEFAULT_SALESFORCE_API_VERSION = "59.0"
# Salesforce's shared login hosts: they refuse the client credentials flow ("request not
# supported on this domain"), which works only on the org's My Domain token URL.
SALESFORCE_LOGIN_HOSTS = ("login.salesforce.com", "test.salesforce.com")
MAX_KEY_BYTES = 64 * 1024  # an RSA key in PEM is a few kilobytes


def is_loopback(url: str) -> bool:
    """Whether ``url``'s host is this machine (127.0.0.0/8, ::1, localhost)."""
    host = (urlsplit(url).hostname or "").lower()
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def require_tls(setting: str, url: str) -> str:
    """Plain ``http://`` only to this machine: anywhere else a token would cross the network
    in clear text."""
    scheme = urlsplit(url).scheme.lower()
    if scheme == "https" or (scheme == "http" and is_loopback(url)):
        return url.rstrip("/")
    if scheme == "http":
        raise ValueError(f"{setting}={url}: plain http:// is refused for any host but loopback "
                         "(127.0.0.1, ::1, localhost); use the https:// URL")
    raise ValueError(f"{setting}={url}: write the full URL, starting with https://")


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

    @field_validator("private_key_file")
    @classmethod
    def _key_file_readable(cls, value: Path) -> Path:
        """Checked when the settings load, so ``check`` and every command name the setting
        and the path at once; it is read again at each sign-in (the key may be rotated)."""
        value = value.expanduser()
        try:
            pem = read_regular_file(value, MAX_KEY_BYTES)
        except NotReadable as exc:
            raise ValueError(f"{value}: {exc.reason}; give the path of the private key (PEM) "
                             "whose certificate the connected app holds") from None
        if b"ENCRYPTED PRIVATE KEY-----" in pem:
            raise ValueError(f"{value}: the private key is encrypted; give an unencrypted "
                             "PEM key (openssl pkey -in KEY -out KEY.pem), kept mode 0600")
        if b"PRIVATE KEY-----" not in pem:
            raise ValueError(f"{value}: the file holds no PEM private key (-----BEGIN PRIVATE "
                             "KEY-----); give the key, not the certificate")
        return value


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


class SchemaRefresh(BaseModel):
    """How long a describe or people list is used before it is fetched again (both systems).
    The engine keeps them in its state store, so a restart or another process uses them too."""

    schema_refresh_hours: float = Field(
        24.0, gt=0, description="describe each object again after this long (an unknown-field "
        "error describes it again at once)")
    people_refresh_hours: float = Field(
        1.0, gt=0, description="read the users (Salesforce) or owners (HubSpot) again after "
        "this long: a new rep's records map to their owner within it")


class SalesforceSettings(SchemaRefresh):
    model_config = ConfigDict(hide_input_in_errors=True)  # an error never echoes a secret

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
    activity_poll_minutes: float = Field(
        5.0, ge=0, description="read the Tasks and Events changed since the last read this "
        "often for the SLA rules, not every cycle (0: every cycle); a lead about to be "
        "declared cold always has its activity read first")

    @field_validator("ca_bundle")
    @classmethod
    def _ca_bundle_loads(cls, value: Path | None) -> Path | None:
        """Checked here, not at the first request: there requests raises a bare ``OSError``.
        A folder of hashed certificates (``c_rehash``) is allowed, as requests allows it."""
        if value is None:
            return value
        value = value.expanduser()
        if value.is_dir():
            return value
        if not value.exists():
            raise ValueError(f"{value} does not exist; give the path of the CA bundle (PEM) "
                             "that signed the Salesforce host's certificate")
        if not value.is_file():  # a FIFO or device: loading it could block or never end
            raise ValueError(f"{value} is not a regular file; give the path of a PEM file")
        try:
            ssl.create_default_context().load_verify_locations(cafile=str(value))
        except ssl.SSLError:
            raise ValueError(f"{value} holds no PEM certificate; give the path of the CA "
                             "bundle (PEM) that signed the Salesforce host's certificate"
                             ) from None
        except OSError as exc:
            raise ValueError(f"{value} cannot be read: {exc.strerror}") from None
        return value

    @field_validator("token_url", "instance_url")
    @classmethod
    def _https_only(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith("https://"):
            raise ValueError("Salesforce URLs must start with https:// (simple-salesforce and "
                             "Salesforce itself speak only HTTPS)")
        return value.rstrip("/") if value else value

    @field_validator("auth")
    @classmethod
    def _client_credentials_on_my_domain(cls, value: SalesforceAuth, info: ValidationInfo
                                         ) -> SalesforceAuth:
        token_url = str(info.data.get("token_url") or "")
        host = (urlsplit(token_url).hostname or "").lower()
        if isinstance(value, ClientCredentialsAuth) and host in SALESFORCE_LOGIN_HOSTS:
            raise ValueError(
                f"STAGESYNC_SALESFORCE__TOKEN_URL={token_url}: the client credentials flow works "
                f"only on your org's My Domain token URL ({host} answers \"request not supported "
                "on this domain\"); set it to https://YOUR-DOMAIN.my.salesforce.com/services/"
                "oauth2/token")
        return value


class HubSpotOAuth(BaseModel):
    """A HubSpot OAuth app's credentials: access tokens are minted from the refresh token and
    expire (HubSpot's live 30 minutes), so they are renewed ``refresh_margin_seconds`` before
    expiry and once on a 401. Secrets are ``SecretStr``: never logged or printed."""

    client_id: str
    client_secret: SecretStr
    refresh_token: SecretStr
    refresh_margin_seconds: float = Field(300.0, ge=0)


class HubSpotSettings(SchemaRefresh):
    host: str = "https://api.hubapi.com"
    access_token: SecretStr | None = Field(
        None, description="a private app's access token (static); or set oauth instead")
    oauth: HubSpotOAuth | None = None
    account_time_zone: str = Field(
        "UTC", description="the HubSpot account's time zone (Settings > Account defaults): "
        "its daily API limit resets at midnight there")
    timeout_seconds: float = 60.0
    requests_per_ten_seconds: int = Field(100, ge=0, description="0 turns pacing off")
    searches_per_second: int = Field(4, ge=0, description="0 turns pacing off (HubSpot: 4/s)")
    search_lookback_seconds: float = Field(
        300.0, ge=0, description="re-read this far behind the watermark: search lags writes")
    retry_attempts: int = 6
    archive_pages_per_cycle: int = Field(
        20, ge=1, description="archived-record pages (100 each) read per archive poll: "
        "HubSpot lists its archive only in id order, so a large one is read a slice at a time")
    archive_poll_minutes: float = Field(
        15.0, ge=0, description="read the next archive slice this often, not every cycle "
        "(0: every cycle); after the last slice the next pass starts one interval later")
    full_id_check_hours: float = Field(
        24.0, gt=0, description="compare the full id lists this often: merged-away and "
        "purged records vanish without an archive entry")

    @field_validator("host")
    @classmethod
    def _strip(cls, value: str) -> str:
        return require_tls("STAGESYNC_HUBSPOT__HOST", value)

    @field_validator("account_time_zone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {value!r}: use an IANA name such as "
                             "America/New_York") from None
        return value

    @model_validator(mode="after")
    def _one_credential(self) -> HubSpotSettings:
        if (self.access_token is None) == (self.oauth is None):
            raise ValueError("set either access_token (a private app) or oauth (client_id, "
                             "client_secret, refresh_token), not both and not neither")
        return self


class ConnectionSettings(BaseSettings):
    """Everything needed to reach both systems."""

    model_config = SettingsConfigDict(env_prefix="STAGESYNC_", env_nested_delimiter="__",
                                      extra="ignore", hide_input_in_errors=True)

    salesforce: SalesforceSettings
    hubspot: HubSpotSettings


def load_settings(env_file: Path | None = None) -> ConnectionSettings:
    """Read settings from the environment, and from ``env_file`` when given. An env file that
    cannot be read (missing, not a regular file, not UTF-8) raises ``SettingsFileError``
    before pydantic-settings opens it: it would skip a missing one silently."""
    if env_file is not None:
        read_env_file(env_file)
        return ConnectionSettings(_env_file=env_file, _env_file_encoding="utf-8")
    return ConnectionSettings()
