"""The requestor: the one object that talks HTTP to the loyalty API.

``Requestor.request`` signs a call (through ``LoyaltyAuth``), sends it on the client's
``requests.Session``, retries what is safe to retry, corrects the clock once when the
server refuses the timestamp, decodes the JSON and turns an error answer into the
matching ``LoyaltyError``. ``Requestor.get_list`` wraps a list endpoint in a
``ListIterator`` that pages with ``starting_after``.

It knows nothing of scopes or of typed objects: the resources (``resources.py``) check the
scope first (``KeyScopes``), then call ``request`` or ``get_list`` and wrap the JSON.

Each attempt is signed afresh (new timestamp and nonce); a POST carries the same
``Idempotency-Key`` on every attempt, so a retried write is applied once.
"""

from __future__ import annotations

import json
import logging
import os
import random
import ssl
import time
from email.utils import parsedate_to_datetime
from typing import Any, Callable, Generic, Mapping, TypeVar
from urllib.parse import quote, urlencode, urlsplit

import requests

from loyalty_sdk.errors import (
    APIConnectionError,
    APIError,
    AuthenticationError,
    InsufficientScopeError,
    LoyaltyError,
    RateLimitError,
    error_class,
)
from loyalty_sdk.objects import LoyaltyObject
from loyalty_sdk.signing import LoyaltyAuth

T = TypeVar("T", bound=LoyaltyObject)

# Retries and clock corrections are logged at INFO (never a key, secret or body).
log = logging.getLogger("loyalty_sdk")

ERROR_BODY_PREVIEW = 200  # bytes of a non-JSON error body quoted in the APIError

# Connection failures worth another attempt; SSL and URL errors are not going to heal.
_RETRYABLE_EXCEPTIONS = (
    requests.exceptions.ConnectionError,
    requests.exceptions.Timeout,
    requests.exceptions.ChunkedEncodingError,
)
_NOT_RETRYABLE_EXCEPTIONS = (requests.exceptions.SSLError, requests.exceptions.InvalidURL)


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


class Requestor:
    """Signs, sends and retries calls to one server; answers JSON or raises a ``LoyaltyError``.

    ``base_url`` is the checked server root (no ``/v1``); ``headers`` go on every request
    (``Accept``, ``User-Agent``). The retry settings are plain attributes, read at each call.
    """

    def __init__(self, base_url: str, auth: LoyaltyAuth, session: requests.Session, *,
                 timeout: float | tuple[float, float], max_retries: int, retry_backoff: float,
                 max_retry_delay: float, headers: Mapping[str, str]) -> None:
        self.base_url = base_url
        self.auth = auth
        self.session = session
        self.timeout = timeout
        self.max_retries = max_retries
        self.retry_backoff = retry_backoff
        self.max_retry_delay = max_retry_delay
        self.headers = dict(headers)
        self._env_settings: dict[str, Any] | None = None

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

        Retries connection errors, 429 and 5xx; a POST gets an ``Idempotency-Key`` (yours,
        or a new one) kept across retries; raises a ``LoyaltyError`` subclass on failure.
        """
        method = method.upper()
        if not path.startswith("/"):
            raise ValueError(f"path must start with '/', e.g. /v1/key (got {path!r})")
        url = self.base_url + path
        if params:
            pairs = [(k, _query_value(v)) for k, v in params.items() if v is not None]
            if pairs:
                url += "?" + urlencode(pairs, quote_via=quote, safe="")
        headers = dict(self.headers)
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

    def get_list(self, path: str, item_type: type[T], *, params: Mapping[str, Any] | None = None,
                 limit: int | None = None, page_size: int = 100) -> ListIterator[T]:
        """A lazy iterator over ``GET path``'s list: each page is one ``request``, made when needed."""
        return ListIterator(lambda page_params: self.request("GET", path, params=page_params), item_type,
                            dict(params or {}), limit=limit, page_size=page_size)

    # -- one call, attempt by attempt --------------------------------------------------------

    def _environment(self, url: str) -> dict[str, Any]:
        # What Session.request would merge in (proxies, CA bundle): computed once per requestor.
        if self._env_settings is None:
            self._env_settings = dict(self.session.merge_environment_settings(url, {}, None, None, None))
        return self._env_settings

    def _send_with_retries(self, method: str, url: str, headers: dict[str, str], body: bytes | None) -> dict[str, Any]:
        attempt = 0
        clock_corrected = False
        settings = self._environment(url)
        while True:
            try:
                prepared = self.session.prepare_request(
                    requests.Request(method, url, headers=headers, data=body, auth=self.auth)
                )  # the auth object signs here: a new timestamp and nonce for every attempt
                response = self.session.send(prepared, timeout=self.timeout, allow_redirects=False, **settings)
            except requests.exceptions.RequestException as exc:
                retryable = isinstance(exc, _RETRYABLE_EXCEPTIONS) and not isinstance(exc, _NOT_RETRYABLE_EXCEPTIONS)
                if retryable and attempt < self.max_retries:
                    delay = self._backoff(attempt)
                    log.info("retrying %s %s in %.2f s after %s (attempt %d of %d)", method, urlsplit(url).path,
                             delay, type(exc).__name__, attempt + 2, self.max_retries + 1)
                    self._sleep(delay)
                    attempt += 1
                    continue
                untrusted = _certificate_not_trusted(exc)
                reason = (f"the server's TLS certificate is not trusted ({untrusted}); if the platform uses a "
                          "private certificate authority, set REQUESTS_CA_BUNDLE to that CA's certificate (PEM)"
                          if untrusted else f"{type(exc).__name__}: {_short(exc)}")
                raise APIConnectionError(
                    f"could not complete {method} {urlsplit(url).path} at {self.base_url} "
                    f"after {attempt + 1} attempt{'s' if attempt else ''}: {reason}"
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
                    self.auth.clock_offset = offset
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
        return server_now - self.auth.clock()

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
                sdk_canonical_string=self.auth.canonical_for(prepared), **kwargs,
            )
        if issubclass(cls, RateLimitError):
            return cls(message, retry_after=_retry_after_seconds(response), **kwargs)
        return cls(message, **kwargs)


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


def _query_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _certificate_not_trusted(exc: BaseException) -> str | None:
    """OpenSSL's reason when the failure is a certificate that did not verify (found inside
    the exceptions requests and urllib3 wrap it in), else None."""
    pending, seen = [exc], set()
    while pending:
        current = pending.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        if isinstance(current, ssl.SSLCertVerificationError):
            return current.verify_message or "certificate verify failed"
        inner = [*current.args, getattr(current, "reason", None), current.__cause__, current.__context__]
        pending += [e for e in inner if isinstance(e, BaseException)]
    return None


def _short(exc: BaseException, limit: int = 300) -> str:
    text = str(exc)
    return text if len(text) <= limit else text[:limit] + "…"
