"""``LoyaltyClient``: signed, scope-checked, retried calls to the loyalty API.

The client checks its configuration and assembles three parts: a ``Requestor``
(``_requestor.py``: signs, sends, retries, raises), ``KeyScopes`` (``scopes.py``: the
key's scopes, checked before sending) and the resources (``resources.py``:
``client.members`` and the rest, which use the other two). One ``requests.Session`` is
reused for every call.
"""

from __future__ import annotations

import os
import time
from typing import Any, Callable, Mapping
from urllib.parse import urlsplit

import requests

from loyalty_sdk._requestor import ListIterator, Requestor
from loyalty_sdk._version import __version__
from loyalty_sdk.errors import ConfigurationError
from loyalty_sdk.objects import KeyInfo
from loyalty_sdk.resources import Cards, Cashback, Claims, Members, Referrals, Stamps
from loyalty_sdk.scopes import KeyScopes
from loyalty_sdk.signing import LoyaltyAuth, check_api_key, check_app_id, check_app_secret, mask_key

# ListIterator lives in _requestor.py; it stays importable from here, as before.
__all__ = ["LoyaltyClient", "ListIterator", "validate_base_url"]

ENV_APP_ID = "LOYALTY_APP_ID"
ENV_APP_SECRET = "LOYALTY_APP_SECRET"
ENV_API_KEY = "LOYALTY_API_KEY"
ENV_BASE_URL = "LOYALTY_BASE_URL"

DEFAULT_TIMEOUT = (5.0, 30.0)  # (connect, read) seconds
DEFAULT_MAX_RETRIES = 2


def validate_base_url(base_url: str) -> str:
    """The API's root URL without a trailing slash; raises ConfigurationError when unusable."""
    if not isinstance(base_url, str) or not base_url.strip():
        raise ConfigurationError(f"base_url is missing: pass base_url= or set {ENV_BASE_URL} (e.g. https://loyalty.example.com)")
    base_url = base_url.strip()
    parts = urlsplit(base_url)
    if parts.scheme not in ("http", "https") or not parts.hostname or any(c.isspace() for c in base_url):
        raise ConfigurationError(
            f"base_url {base_url!r} needs a scheme and a host, e.g. https://loyalty.example.com or http://127.0.0.1:8000"
        )
    if parts.query or parts.fragment:
        raise ConfigurationError(f"base_url {base_url!r} must not carry a query or a fragment")
    base_url = base_url.rstrip("/")
    if base_url.endswith("/v1"):
        raise ConfigurationError(f"base_url {base_url!r} should be the server's root, without /v1 (the SDK adds it)")
    return base_url


def _credential(value: str | None, name: str, env: str) -> str:
    if value is None or (isinstance(value, str) and not value.strip()):
        raise ConfigurationError(f"{name} is missing: pass {name}= or set {env}")
    if not isinstance(value, str):
        raise ConfigurationError(f"{name} must be a string, not {type(value).__name__}")
    return value.strip()


class _RequestorSetting:
    """A client attribute that is the requestor's attribute of the same name."""

    def __init__(self, name: str, doc: str) -> None:
        self.name = name
        self.__doc__ = doc

    def __get__(self, client: "LoyaltyClient | None", owner: type | None = None) -> Any:
        if client is None:
            return self
        return getattr(client._requestor, self.name)

    def __set__(self, client: "LoyaltyClient", value: Any) -> None:
        setattr(client._requestor, self.name, value)


class LoyaltyClient:
    """A client for the loyalty API: signs every call, checks scopes first, retries safely.

    ::

        with LoyaltyClient(app_id="app_…", app_secret="secret_…", api_key="test_sk_…",
                           base_url="https://loyalty.example.com") as client:
            print(client.cashback.balance("mem_…").balance)

    Credentials and ``base_url`` are checked here: a missing or malformed one raises
    ``ConfigurationError`` (a ``LoyaltyError`` and a ``ValueError``) before any call.

    ``timeout`` is (connect, read) seconds or one number; ``max_retries`` is how many
    times a connection error, 429 or 5xx is retried (exponential backoff with jitter,
    starting at ``retry_backoff`` seconds, honouring ``Retry-After`` up to
    ``max_retry_delay``); ``clock`` returns Unix time for signing (default ``time.time``);
    the client corrects its offset from the server's ``Date`` when a timestamp is refused.
    """

    def __init__(
        self,
        app_id: str | None = None,
        app_secret: str | None = None,
        api_key: str | None = None,
        base_url: str | None = None,
        *,
        timeout: float | tuple[float, float] = DEFAULT_TIMEOUT,
        max_retries: int = DEFAULT_MAX_RETRIES,
        retry_backoff: float = 0.5,
        max_retry_delay: float = 10.0,
        session: requests.Session | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        app_id = _credential(app_id, "app_id", ENV_APP_ID)
        app_secret = _credential(app_secret, "app_secret", ENV_APP_SECRET)
        api_key = _credential(api_key, "api_key", ENV_API_KEY)
        try:
            check_app_id(app_id)
            check_app_secret(app_secret)
            self.mode = check_api_key(api_key)
        except ValueError as exc:
            raise ConfigurationError(str(exc)) from None
        base_url = validate_base_url(base_url)  # type: ignore[arg-type]
        if isinstance(max_retries, bool) or not isinstance(max_retries, int) or max_retries < 0:
            raise ConfigurationError("max_retries must be a whole number ≥ 0")
        self.app_id = app_id
        self._api_key = api_key
        self._auth = LoyaltyAuth(app_id=app_id, app_secret=app_secret, api_key=api_key, clock=clock)
        self._owns_session = session is None
        self._session = session if session is not None else requests.Session()
        self._requestor = Requestor(
            base_url, self._auth, self._session, timeout=timeout, max_retries=max_retries,
            retry_backoff=retry_backoff, max_retry_delay=max_retry_delay,
            headers={"Accept": "application/json",
                     "User-Agent": f"loyalty-sdk-python/{__version__} {requests.utils.default_user_agent()}"},
        )
        self._scopes = KeyScopes(self._requestor, mode=self.mode, masked_key=mask_key(api_key))
        self.members = Members(self._requestor, self._scopes)
        self.cards = Cards(self._requestor, self._scopes)
        self.stamps = Stamps(self._requestor, self._scopes)
        self.cashback = Cashback(self._requestor, self._scopes)
        self.claims = Claims(self._requestor, self._scopes)
        self.referrals = Referrals(self._requestor, self._scopes)

    # The connection settings live on the requestor, which reads them at every call;
    # these read and change them there.
    base_url = _RequestorSetting("base_url", "The server's root URL, without a trailing slash or /v1.")
    timeout = _RequestorSetting("timeout", "(connect, read) seconds, or one number for both.")
    max_retries = _RequestorSetting("max_retries", "How many times a connection error, 429 or 5xx is retried.")
    retry_backoff = _RequestorSetting("retry_backoff", "Seconds before the first retry (doubled each time, jittered).")
    max_retry_delay = _RequestorSetting("max_retry_delay", "The longest wait between attempts, in seconds.")

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **options: Any) -> "LoyaltyClient":
        """A client from ``LOYALTY_APP_ID``, ``LOYALTY_APP_SECRET``, ``LOYALTY_API_KEY`` and ``LOYALTY_BASE_URL``.

        Raises ``ConfigurationError`` naming every variable that is unset. ``options`` go
        to the constructor (``timeout``, ``max_retries``, …).
        """
        env = os.environ if environ is None else environ
        names = (ENV_APP_ID, ENV_APP_SECRET, ENV_API_KEY, ENV_BASE_URL)
        missing = [n for n in names if not (env.get(n) or "").strip()]
        if missing:
            raise ConfigurationError(f"set the environment variable{'s' if len(missing) > 1 else ''} {', '.join(missing)}")
        return cls(app_id=env[ENV_APP_ID], app_secret=env[ENV_APP_SECRET], api_key=env[ENV_API_KEY],
                   base_url=env[ENV_BASE_URL], **options)

    def __repr__(self) -> str:
        return f"LoyaltyClient(app_id={self.app_id!r}, api_key={mask_key(self._api_key)!r}, base_url={self.base_url!r})"

    def __enter__(self) -> "LoyaltyClient":
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the HTTP session (only if this client created it)."""
        if self._owns_session:
            self._session.close()

    @property
    def auth(self) -> LoyaltyAuth:
        """The ``requests`` auth object this client signs with (usable with a plain ``requests`` call)."""
        return self._auth

    @property
    def clock_offset(self) -> float:
        """Seconds added to the local clock when signing, learned from the server's ``Date`` header."""
        return self._auth.clock_offset

    # -- scopes -------------------------------------------------------------------------

    def key_info(self, *, refresh: bool = False) -> KeyInfo:
        """The calling key (``GET /v1/key``): app_id, mode, scopes, name, expires_at. Cached after the first call."""
        return self._scopes.key_info(refresh=refresh)

    def has_scope(self, scope: str) -> bool:
        """Whether the key carries ``scope`` (an unknown scope name raises ValueError)."""
        return self._scopes.has(scope)

    def require_scopes(self, *scopes: str) -> None:
        """Raise ``InsufficientScopeError`` (``.missing`` lists them) unless the key has every one of ``scopes``."""
        self._scopes.require(*scopes)

    # -- calls --------------------------------------------------------------------------

    def request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        json_body: Mapping[str, Any] | None = None,
        idempotency_key: str | None = None,
    ) -> dict[str, Any]:
        """Send one signed request to ``path`` (e.g. ``/v1/key``) and return the decoded JSON.

        The lower layer under every resource method (no local scope check here): retries
        connection errors, 429 and 5xx; a POST gets an ``Idempotency-Key`` (yours, or a new
        one) kept across retries; raises a ``LoyaltyError`` subclass on failure.
        """
        return self._requestor.request(method, path, params=params, json_body=json_body,
                                       idempotency_key=idempotency_key)
