"""``LoyaltyClient``: signed, scope-checked, retried calls to the loyalty API.

One ``requests.Session`` is reused for every call. Each attempt is signed afresh (new
timestamp and nonce); a POST carries the same ``Idempotency-Key`` on every attempt, so a
retried write is applied once.
"""

from __future__ import annotations

import json
import logging
import os
import random
import threading
import time
from email.utils import parsedate_to_datetime
from typing import Any, Callable, Generic, Mapping, TypeVar
from urllib.parse import quote, urlencode, urlsplit

import requests

from loyalty_sdk._version import __version__
from loyalty_sdk.errors import (
    APIConnectionError,
    APIError,
    AuthenticationError,
    ConfigurationError,
    InsufficientScopeError,
    LoyaltyError,
    RateLimitError,
    error_class,
)
from loyalty_sdk.objects import KeyInfo, LoyaltyObject
from loyalty_sdk.scopes import ENDPOINTS, check_scope_names
from loyalty_sdk.signing import LoyaltyAuth, check_api_key, check_app_id, check_app_secret, mask_key

T = TypeVar("T", bound=LoyaltyObject)

# Retries and clock corrections are logged at INFO (never a key, secret or body).
log = logging.getLogger("loyalty_sdk")

ENV_APP_ID = "LOYALTY_APP_ID"
ENV_APP_SECRET = "LOYALTY_APP_SECRET"
ENV_API_KEY = "LOYALTY_API_KEY"
ENV_BASE_URL = "LOYALTY_BASE_URL"

DEFAULT_TIMEOUT = (5.0, 30.0)  # (connect, read) seconds
DEFAULT_MAX_RETRIES = 2
ERROR_BODY_PREVIEW = 200  # bytes of a non-JSON error body quoted in the APIError

# Connection failures worth another attempt; SSL and URL errors are not going to heal.
_RETRYABLE_EXCEPTIONS = (
    requests.exceptions.ConnectionError,
    requests.exceptions.Timeout,
    requests.exceptions.ChunkedEncodingError,
)
_NOT_RETRYABLE_EXCEPTIONS = (requests.exceptions.SSLError, requests.exceptions.InvalidURL)


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


def _retry_after_seconds(response: requests.Response) -> float | None:
    value = response.headers.get("Retry-After")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        return max(0.0, parsedate_to_datetime(value).timestamp() - time.time())
    except (TypeError, ValueError, IndexError):
        return None


class ListIterator(Generic[T]):
    """Iterates over every object of a list, fetching ``starting_after`` pages as it goes.

    ``limit`` caps how many objects are yielded in total (None: all of them);
    ``page_size`` (1-100) is how many each request asks for.
    """

    def __init__(self, fetch: Callable[[dict[str, Any]], dict[str, Any]], item_type: type[T], params: dict[str, Any],
                 *, limit: int | None, page_size: int) -> None:
        if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 0):
            raise ValueError("limit must be a whole number ≥ 0 (or None for every object)")
        if isinstance(page_size, bool) or not isinstance(page_size, int) or not 1 <= page_size <= 100:
            raise ValueError("page_size must be a whole number from 1 to 100")
        self._fetch = fetch
        self._item_type = item_type
        self._params = {k: v for k, v in params.items() if v is not None}
        self._remaining = limit
        self._page_size = page_size
        self._buffer: list[dict[str, Any]] = []
        self._starting_after: str | None = None
        self._done = limit == 0

    def __iter__(self) -> "ListIterator[T]":
        return self

    def __next__(self) -> T:
        if not self._buffer:
            if self._done:
                raise StopIteration
            self._fetch_page()
            if not self._buffer:
                raise StopIteration
        item = self._buffer.pop(0)
        if self._remaining is not None:
            self._remaining -= 1
            if self._remaining <= 0:
                self._done = True
                self._buffer.clear()
        return self._item_type(item)

    def _fetch_page(self) -> None:
        size = self._page_size if self._remaining is None else min(self._page_size, self._remaining)
        params = {**self._params, "limit": size}
        if self._starting_after is not None:
            params["starting_after"] = self._starting_after
        page = self._fetch(params)
        data = page.get("data") or []
        self._buffer = list(data)
        self._done = not page.get("has_more") or not data
        if data:
            self._starting_after = data[-1].get("id")
            if self._starting_after is None:
                self._done = True


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
        self.base_url = validate_base_url(base_url)  # type: ignore[arg-type]
        if isinstance(max_retries, bool) or not isinstance(max_retries, int) or max_retries < 0:
            raise ConfigurationError("max_retries must be a whole number ≥ 0")
        self.app_id = app_id
        self.timeout = timeout
        self.max_retries = max_retries
        self.retry_backoff = retry_backoff
        self.max_retry_delay = max_retry_delay
        self._api_key = api_key
        self._auth = LoyaltyAuth(app_id=app_id, app_secret=app_secret, api_key=api_key, clock=clock)
        self._owns_session = session is None
        self._session = session if session is not None else requests.Session()
        self._headers = {
            "Accept": "application/json",
            "User-Agent": f"loyalty-sdk-python/{__version__} {requests.utils.default_user_agent()}",
        }
        self._env_settings: dict[str, Any] | None = None
        self._key_info: KeyInfo | None = None
        self._key_info_lock = threading.Lock()

        from loyalty_sdk.resources import Cards, Cashback, Claims, Members, Referrals, Stamps

        self.members = Members(self)
        self.cards = Cards(self)
        self.stamps = Stamps(self)
        self.cashback = Cashback(self)
        self.claims = Claims(self)
        self.referrals = Referrals(self)

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
        if self._key_info is None or refresh:
            with self._key_info_lock:
                if self._key_info is None or refresh:
                    self._key_info = KeyInfo(self.request("GET", ENDPOINTS["key_info"].path))
        return self._key_info

    def has_scope(self, scope: str) -> bool:
        """Whether the key carries ``scope`` (an unknown scope name raises ValueError)."""
        check_scope_names([scope])
        return scope in (self.key_info().scopes or ())

    def require_scopes(self, *scopes: str) -> None:
        """Raise ``InsufficientScopeError`` (``.missing`` lists them) unless the key has every one of ``scopes``."""
        check_scope_names(list(scopes))
        held = set(self.key_info().scopes or ())
        missing = [s for s in scopes if s not in held]
        if missing:
            raise InsufficientScopeError(
                f"this {self.mode} key ({mask_key(self._api_key)}) lacks the scope"
                f"{'s' if len(missing) > 1 else ''} {', '.join(missing)}; "
                "create or roll a key with them in the portal",
                missing=missing,
            )

    # -- calls --------------------------------------------------------------------------

    def _call(self, operation: str, result: type[T], *, path_params: Mapping[str, str] | None = None,
              params: Mapping[str, Any] | None = None, body: Mapping[str, Any] | None = None,
              idempotency_key: str | None = None) -> T:
        """Check the operation's scope locally, send it, wrap the JSON in ``result``."""
        method, path = self._prepare_operation(operation, path_params)
        return result(self.request(method, path, params=params, json_body=body, idempotency_key=idempotency_key))

    def _list(self, operation: str, item: type[T], *, path_params: Mapping[str, str] | None = None,
              params: Mapping[str, Any] | None = None, limit: int | None = None, page_size: int = 100) -> ListIterator[T]:
        """A lazy iterator over a list operation; the scope is checked now, pages fetched on demand."""
        method, path = self._prepare_operation(operation, path_params)
        return ListIterator(lambda page_params: self.request(method, path, params=page_params), item,
                            dict(params or {}), limit=limit, page_size=page_size)

    def _prepare_operation(self, operation: str, path_params: Mapping[str, str] | None) -> tuple[str, str]:
        endpoint = ENDPOINTS[operation]
        if endpoint.scope is not None:
            info = self.key_info()
            if endpoint.scope not in (info.scopes or ()):
                raise InsufficientScopeError(
                    f"{operation}() calls {endpoint.method} {endpoint.path}, which needs the scope {endpoint.scope}; "
                    f"this {self.mode} key ({mask_key(self._api_key)}) has {', '.join(info.scopes or ()) or 'none'}. "
                    "Not sent. Create or roll a key with that scope in the portal.",
                    missing=[endpoint.scope],
                )
        path = endpoint.path
        for name, value in (path_params or {}).items():
            if not isinstance(value, str) or not value:
                raise ValueError(f"{name} must be a non-empty string id, not {value!r}")
            path = path.replace("{" + name + "}", quote(value, safe=""))
        return endpoint.method, path

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
        method = method.upper()
        if not path.startswith("/"):
            raise ValueError(f"path must start with '/', e.g. /v1/key (got {path!r})")
        url = self.base_url + path
        if params:
            pairs = [(k, _query_value(v)) for k, v in params.items() if v is not None]
            if pairs:
                url += "?" + urlencode(pairs, quote_via=quote, safe="")
        headers = dict(self._headers)
        body: bytes | None = None
        if method in ("POST", "PUT", "PATCH"):
            body = json.dumps(dict(json_body or {}), separators=(",", ":"), ensure_ascii=False).encode("utf-8")
            headers["Content-Type"] = "application/json"
        elif json_body is not None:
            raise ValueError(f"a {method} request has no body")
        if method == "POST":
            if idempotency_key is None:
                idempotency_key = "sdk_" + os.urandom(16).hex()
            elif not isinstance(idempotency_key, str) or not 1 <= len(idempotency_key) <= 255:
                raise ValueError("idempotency_key must be a string of 1-255 characters")
            headers["Idempotency-Key"] = idempotency_key
        return self._send_with_retries(method, url, headers, body)

    def _environment(self, url: str) -> dict[str, Any]:
        # What Session.request would merge in (proxies, CA bundle): computed once per client.
        if self._env_settings is None:
            self._env_settings = dict(self._session.merge_environment_settings(url, {}, None, None, None))
        return self._env_settings

    def _send_with_retries(self, method: str, url: str, headers: dict[str, str], body: bytes | None) -> dict[str, Any]:
        attempt = 0
        clock_corrected = False
        settings = self._environment(url)
        while True:
            try:
                prepared = self._session.prepare_request(
                    requests.Request(method, url, headers=headers, data=body, auth=self._auth)
                )  # the auth object signs here: a new timestamp and nonce for every attempt
                response = self._session.send(prepared, timeout=self.timeout, allow_redirects=False, **settings)
            except requests.exceptions.RequestException as exc:
                retryable = isinstance(exc, _RETRYABLE_EXCEPTIONS) and not isinstance(exc, _NOT_RETRYABLE_EXCEPTIONS)
                if retryable and attempt < self.max_retries:
                    delay = self._backoff(attempt)
                    log.info("retrying %s %s in %.2f s after %s (attempt %d of %d)", method, urlsplit(url).path,
                             delay, type(exc).__name__, attempt + 2, self.max_retries + 1)
                    self._sleep(delay)
                    attempt += 1
                    continue
                raise APIConnectionError(
                    f"could not complete {method} {urlsplit(url).path} at {self.base_url} "
                    f"after {attempt + 1} attempt{'s' if attempt else ''}: {type(exc).__name__}: {_short(exc)}"
                ) from exc

            status = response.status_code
            if 200 <= status < 300:
                return self._decode_success(response)
            error = self._error_from(response, prepared)
            if error.code == "timestamp_out_of_range" and not clock_corrected:
                offset = self._offset_from_date(response)
                if offset is not None:
                    log.info("the server's clock is %+.0f s from ours (request id %s): signing with that offset",
                             offset, error.request_id)
                    self._auth.clock_offset = offset
                    clock_corrected = True
                    continue
            retry_after = _retry_after_seconds(response)
            if self._should_retry(status, error, retry_after) and attempt < self.max_retries:
                delay = self._backoff(attempt)
                if retry_after is not None:
                    delay = max(delay, retry_after)
                log.info("retrying %s %s in %.2f s after HTTP %d %s (request id %s, attempt %d of %d)", method,
                         urlsplit(url).path, delay, status, error.code or "", error.request_id, attempt + 2,
                         self.max_retries + 1)
                self._sleep(delay)
                attempt += 1
                continue
            raise error

    def _should_retry(self, status: int, error: LoyaltyError, retry_after: float | None) -> bool:
        if retry_after is not None and retry_after > self.max_retry_delay:
            return False  # the caller decides whether to wait that long
        if status == 409:
            return error.code == "idempotency_request_in_progress"
        return status == 429 or status >= 500

    def _backoff(self, attempt: int) -> float:
        delay = float(min(self.max_retry_delay, self.retry_backoff * (2 ** attempt)))
        return delay * (0.5 + random.random() / 2)  # jitter: half to all of it

    def _sleep(self, seconds: float) -> None:
        if seconds > 0:
            time.sleep(seconds)

    def _offset_from_date(self, response: requests.Response) -> float | None:
        date = response.headers.get("Date")
        if not date:
            return None
        try:
            server_now = parsedate_to_datetime(date).timestamp()
        except (TypeError, ValueError, IndexError):
            return None
        return server_now - self._auth.clock()

    def _decode_success(self, response: requests.Response) -> dict[str, Any]:
        if not response.content:
            return {}
        try:
            data = response.json()
        except ValueError:
            data = None
        if not isinstance(data, dict):
            raise APIError(
                f"HTTP {response.status_code} with a body that is not the API's JSON (a proxy in the way?): "
                f"{response.content[:ERROR_BODY_PREVIEW]!r}",
                status=response.status_code, request_id=response.headers.get("X-Request-Id"),
                headers=response.headers,
            )
        return data

    def _error_from(self, response: requests.Response, prepared: requests.PreparedRequest) -> LoyaltyError:
        status = response.status_code
        request_id = response.headers.get("X-Request-Id")
        try:
            payload = response.json()
        except ValueError:
            payload = None
        error = payload.get("error") if isinstance(payload, dict) else None
        if not isinstance(error, dict):
            where = f" redirecting to {response.headers['Location']}" if "Location" in response.headers else ""
            return APIError(
                f"HTTP {status}{where} with a body that is not the API's JSON error (a proxy or the wrong "
                f"base_url?): {response.content[:ERROR_BODY_PREVIEW]!r}",
                status=status, request_id=request_id, headers=response.headers,
            )
        code = error.get("code")
        kwargs: dict[str, Any] = dict(
            status=status, code=code, request_id=error.get("request_id") or request_id,
            type=error.get("type"), param=error.get("param"), body=payload, headers=response.headers,
        )
        message = str(error.get("message") or f"HTTP {status}")
        cls = error_class(status, error.get("type"), code)
        if cls is InsufficientScopeError:
            required = error.get("required_scope")
            return InsufficientScopeError(message, missing=[required] if required else [], **kwargs)
        if cls is AuthenticationError and code == "invalid_signature":
            return AuthenticationError(
                message, server_canonical_string=error.get("canonical_string"),
                sdk_canonical_string=self._auth.canonical_for(prepared), **kwargs,
            )
        if cls is RateLimitError:
            return RateLimitError(message, retry_after=_retry_after_seconds(response), **kwargs)
        return cls(message, **kwargs)


def _query_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _short(exc: BaseException, limit: int = 300) -> str:
    text = str(exc)
    return text if len(text) <= limit else text[:limit] + "…"
