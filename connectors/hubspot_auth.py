"""The HubSpot access token: a private app's static one, or OAuth access tokens minted from a
refresh token (``POST /oauth/v1/token``, ``grant_type=refresh_token``), renewed before they
expire and once when HubSpot answers 401.

HubSpot's guidelines ask apps to track the token's lifetime (``expires_in``) rather than wait
for a 401, so expiry is the main trigger and the 401 only the fallback. Tokens and secrets are
never logged, printed or put in an error message.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable
from typing import Any

import hubspot
from urllib3.exceptions import HTTPError as Urllib3Error

from connectors.config import HubSpotSettings
from connectors.errors import ConfigurationError, RetriableError

SYSTEM = "hubspot"
log = logging.getLogger("stagesync.connectors")


class HubSpotTokens:
    """The token to send now. ``oauth`` is False for a private app token (nothing to renew)."""

    def __init__(self, settings: HubSpotSettings,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.settings = settings
        self.oauth = settings.oauth is not None
        self._clock = clock
        self._lock = threading.Lock()
        self._token: str | None = (settings.access_token.get_secret_value()
                                   if settings.access_token is not None else None)
        self._expires: float | None = None
        self.refreshes = 0

    def current(self) -> str:
        """The access token, renewed first when it expires within the margin."""
        with self._lock:
            oauth = self.settings.oauth
            if oauth is None:
                assert self._token is not None
                return self._token
            due = self._expires is None or self._clock() >= self._expires - \
                oauth.refresh_margin_seconds
            if self._token is None or due:
                self._refresh()
            assert self._token is not None
            return self._token

    def force_refresh(self) -> None:
        """After a 401: mint a new access token now."""
        with self._lock:
            self._refresh()

    def _refresh(self) -> None:
        oauth = self.settings.oauth
        assert oauth is not None
        api = hubspot.Client.create(host=self.settings.host).oauth.tokens_api
        try:
            answer: Any = api.create(
                grant_type="refresh_token", client_id=oauth.client_id,
                client_secret=oauth.client_secret.get_secret_value(),
                refresh_token=oauth.refresh_token.get_secret_value())
        except Urllib3Error as exc:
            raise RetriableError(SYSTEM, f"network: {type(exc).__name__} while refreshing "
                                 "the OAuth access token") from None
        except Exception as exc:
            status = int(getattr(exc, "status", 0) or 0)
            if not status:
                raise
            if status >= 500 or status == 429:
                raise RetriableError(SYSTEM, f"{status} while refreshing the OAuth access "
                                     "token") from None
            raise ConfigurationError(SYSTEM, f"the OAuth token refresh was refused ({status} "
                                     f"{_reason(exc)}): check STAGESYNC_HUBSPOT__OAUTH__"
                                     "CLIENT_ID, CLIENT_SECRET and REFRESH_TOKEN, or install "
                                     "the app again for a new refresh token") from None
        self._token = str(answer.access_token)
        self._expires = self._clock() + float(answer.expires_in or 0)
        self.refreshes += 1
        log.info("HubSpot OAuth access token refreshed",
                 extra={"expires_in_seconds": answer.expires_in})


def _reason(exc: Exception) -> str:
    """HubSpot's status word for a refused grant (``BAD_REFRESH_TOKEN``); never the body."""
    try:
        body = json.loads(getattr(exc, "body", None) or "{}")
    except (TypeError, ValueError):
        body = {}
    status = body.get("status") if isinstance(body, dict) else None
    return str(status) if isinstance(status, str) and status.isupper() else "refused"
