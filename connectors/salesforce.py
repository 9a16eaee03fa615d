"""Salesforce connector on simple-salesforce.

We sign in ourselves (see ``salesforce_auth``) and give simple-salesforce our Session, whose CA
bundle the ``REQUESTS_CA_BUNDLE`` variable cannot override (see ``connectors.http``).
"""

from __future__ import annotations

from simple_salesforce.api import Salesforce
from simple_salesforce.exceptions import SalesforceError, SalesforceExpiredSession

from connectors.config import SalesforceSettings
from connectors.contract import CheckReport, ObjectSummary
from connectors.errors import (
    ConfigurationError,
    ConnectorError,
    ReauthenticateError,
    RetriableError,
)
from connectors.http import make_session
from connectors.salesforce_auth import authenticate

SYSTEM = "salesforce"
SYNCED_OBJECTS = ("Lead", "Contact", "Account", "Opportunity", "Task", "User")


def classify(exc: SalesforceError) -> ConnectorError:
    """Map a simple-salesforce error to our three kinds by Salesforce's errorCode.

    Salesforce reports an exhausted daily quota as 403 REQUEST_LIMIT_EXCEEDED, so the code, not
    the status, decides.
    """
    content: list[object] = exc.content if isinstance(exc.content, list) else []
    code = str(content[0].get("errorCode", "")) if content and isinstance(content[0], dict) else ""
    message = str(content[0].get("message", "")) if content and isinstance(content[0],
                                                                           dict) else ""
    if isinstance(exc, SalesforceExpiredSession) or code == "INVALID_SESSION_ID":
        return ReauthenticateError(SYSTEM, "session expired or invalid")
    if code == "REQUEST_LIMIT_EXCEEDED" or exc.status in (429, 500, 502, 503, 504):
        return RetriableError(SYSTEM, f"{exc.status} {code} {message}".strip())
    return ConfigurationError(SYSTEM, f"{exc.status} {code}: {message}".strip())


class SalesforceConnector:
    system = SYSTEM

    def __init__(self, settings: SalesforceSettings) -> None:
        self.settings = settings
        self.http = make_session(settings.ca_bundle, settings.proxies)
        self._client: Salesforce | None = None

    def client(self) -> Salesforce:
        if self._client is None:
            session = authenticate(self.settings, self.http)
            self._client = Salesforce(session_id=session.session_id,
                                      instance_url=session.instance_url,
                                      version=self.settings.api_version, session=self.http)
        return self._client

    def check(self) -> CheckReport:
        try:
            sf = self.client()
            objects = []
            for name in SYNCED_OBJECTS:
                described = getattr(sf, name).describe()
                # an object name from our own constant list, not a value: nothing to escape
                count = sf.query(f"SELECT COUNT() FROM {name}")["totalSize"]  # noqa: S608
                objects.append(ObjectSummary(name=name, label=described["labelPlural"],
                                             records=int(count),
                                             fields=len(described["fields"])))
            limits = sf.limits()
        except SalesforceError as exc:
            raise classify(exc) from None
        daily = limits.get("DailyApiRequests", {})
        usage = sf.api_usage.get("api-usage")
        return CheckReport(
            system=SYSTEM, endpoint=sf.base_url, api_version=self.settings.api_version,
            identity=getattr(self.settings.auth, "username", self.settings.auth.kind),
            objects=objects,
            quota=f"{daily.get('Remaining')} of {daily.get('Max')} daily API requests left",
            calls=int(usage.used) if usage is not None else 0,
        )
