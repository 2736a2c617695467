"""The one gate in front of every /v1 endpoint (DESIGN.md §4).

`verify_request` runs the checks in exactly the documented order and raises `ApiError`
with the documented status and code at the first failure:

1. no `Authorization` → 401 missing_api_key; wrong shape or checksum → 401 malformed_api_key
2. unknown → 401 invalid_api_key; revoked → 401 revoked_api_key; past expiry → 401 expired_api_key
3. no app id header → 401 missing_app_id; not the key's application → 401 app_mismatch
4. no signature headers → 401 missing_signature; bad or out-of-window timestamp →
   401 timestamp_out_of_range; wrong signature → 401 invalid_signature (with the
   `canonical_string` the server signed); nonce seen → 401 replayed_request
5. partner suspended or application disabled → 403 account_disabled
6. the key has allowed IPs and the caller is outside them → 403 ip_not_allowed

then `require_scope` is check 7 (403 insufficient_scope with `required_scope`) and
`check_rate_limit` check 8 (429 rate_limited with Retry-After; `rate_limit_headers` puts
RateLimit-* on every answer to a known key).

Costs on the request path: one indexed query on the key's keyed hash (joined with its
application, its partner and the application's valid secrets, which are decrypted once
per process and cached by ciphertext), one INSERT into the nonce table (its unique index
is what refuses a replay, in every process sharing the database), one count of the key's
rate limit (an upsert in the nonce's transaction on SQLite, else its own statement or a
Redis INCR), and at most about once a minute per key an UPDATE of `last_used_at`. An
answer refused before the count reads the window once for its RateLimit-* headers.
"""

from __future__ import annotations

import hmac
import random
import re
import threading
import time
from dataclasses import dataclass
from datetime import timedelta

import peewee
from flask import g

from portal import rate_limits
from portal.api.errors import ApiError, request_id, secrets_unreadable
from portal.config import current_settings
from portal.credentials import MalformedApiKey, SecretUnreadable, hash_api_key, parse_api_key
from portal.db import SQLITE_WRITE_LOCK, database, ephemeral_write
from portal.domain.guardrails import ip_allowed, rate_limit_of
from portal.logs import get_logger
from portal.models import ApiKey, Application, AppSecret, Nonce, Partner, utcnow
from portal.signing import NONCE_RE, TIMESTAMP_TOLERANCE, canonical_string, signature_matches

log = get_logger("portal.api")

LAST_USED_EVERY = timedelta(seconds=60)
# A nonce must be remembered as long as a request carrying it could still pass the
# timestamp check: a timestamp up to 300 s in the future stays valid for 600 s.
NONCE_LIFETIME = timedelta(seconds=2 * TIMESTAMP_TOLERANCE + 5)
NONCE_CLEANUP_EVERY = 30.0  # seconds between expired-nonce deletions in one process

_TIMESTAMP_RE = re.compile(r"^-?[0-9]{1,15}$")
_SIGNATURE_RE = re.compile(r"^v1=[0-9a-f]{64}$")


@dataclass(frozen=True)
class Caller:
    """Who is calling: the verified key, its application and partner, and its mode."""

    key: ApiKey
    application: Application
    partner_id: int
    mode: str
    scopes: frozenset


def _unauthorized(code: str, message: str, **extra) -> ApiError:
    return ApiError(401, code, message, **extra)


# -- App Secrets, decrypted once per process ----------------------------------------------

class _SecretCache:
    """Plaintext App Secrets keyed by their ciphertext.

    Safe to cache: a ciphertext always decrypts to the same secret, and which secrets are
    *valid* is still read from the database on every request (so regeneration and the end
    of a grace period take effect at once). Bounded so a huge install cannot grow it
    without limit.
    """

    MAX_ENTRIES = 10_000

    def __init__(self):
        self._plain: dict[str, str] = {}
        self._lock = threading.Lock()

    def decrypt(self, ciphertext: str) -> str:
        plain = self._plain.get(ciphertext)
        if plain is None:
            from portal.domain.applications import secret_box

            plain = secret_box().decrypt(ciphertext)
            with self._lock:
                if len(self._plain) >= self.MAX_ENTRIES:
                    self._plain.clear()
                self._plain[ciphertext] = plain
        return plain


_secrets = _SecretCache()


def _decrypted(application: Application, ciphertexts: list[str]) -> list[str]:
    """The application's valid App Secrets in plain text. One the configured keys cannot
    read is the operator's problem (a retired key dropped too early, a backup from before
    a rotation restored): the partner gets a 503 and the log says what to do."""
    try:
        return [_secrets.decrypt(c) for c in ciphertexts]
    except SecretUnreadable:
        log.error("api %s an App Secret of %s cannot be decrypted with LOYALTY_ENCRYPTION_KEY: a retired key "
                  "was dropped or a backup made under an older key was restored; add that key back at the end "
                  "of LOYALTY_ENCRYPTION_KEY (loyalty-portal check lists what is unreadable); answered 503",
                  request_id(), application.app_id)
        raise secrets_unreadable() from None


def valid_secrets(application_id: int, now=None) -> list[str]:
    """The App Secrets that verify signatures now (current, and one in its grace period)."""
    now = now or utcnow()
    rows = database.execute_sql(_sql("secrets"), (application_id, AppSecret.expires_at.db_value(now))).fetchall()
    return [_secrets.decrypt(ciphertext) for (ciphertext,) in rows]


# -- the gate's statements, built once per database engine ---------------------------------
#
# Building a peewee query costs more than running it on SQLite (the joined key lookup
# took ~1 ms of Python per request), so the three statements on every request's path are
# rendered to SQL once per engine and then run with fresh parameters.

_SQL_CACHE: dict[tuple[type, str], str] = {}

_KEY_COLUMNS = (
    ApiKey.id, ApiKey.name, ApiKey.mode, ApiKey.key_hash, ApiKey.first4, ApiKey.last4, ApiKey.scopes,
    ApiKey.expires_at, ApiKey.last_used_at, ApiKey.revoked_at, ApiKey.allowed_ips, ApiKey.rate_limit,
    Application.id, Application.app_id, Application.name, Application.status, Application.partner,
    Partner.status, AppSecret.ciphertext,
)


def _build_sql(name: str) -> str:
    if name == "key":
        # The key, its application and partner, and (one row each) the application's
        # valid secrets: parameters are (now, key hash) in that order.
        query = (ApiKey.select(*_KEY_COLUMNS).join(Application).join(Partner)
                 .switch(Application)
                 .join(AppSecret, peewee.JOIN.LEFT_OUTER, on=(
                     (AppSecret.application == Application.id)
                     & (AppSecret.expires_at.is_null() | (AppSecret.expires_at > utcnow()))))
                 .where(ApiKey.key_hash == ""))
    elif name == "secrets":
        query = AppSecret.select(AppSecret.ciphertext).where(
            (AppSecret.application == 0) & (AppSecret.expires_at.is_null() | (AppSecret.expires_at > utcnow()))
        ).order_by(AppSecret.id.desc())
    else:  # "nonce": the unique index makes a replay insert nothing
        query = Nonce.insert(application=0, nonce="", expires_at=utcnow()).on_conflict_ignore()
    sql, _ = query.sql()
    return sql


def _sql(name: str) -> str:
    cache_key = (type(database.obj), name)
    sql = _SQL_CACHE.get(cache_key)
    if sql is None:
        sql = _SQL_CACHE[cache_key] = _build_sql(name)
    return sql


# -- last_used_at, written about once a minute ---------------------------------------------

_last_used_written: dict[str, float] = {}  # by key hash: ids repeat across databases


def _touch_last_used(key: ApiKey, now) -> None:
    """Record use without a write per request: skip while the stored value (or this
    process's last write) is under a minute old; the conditional UPDATE keeps several
    processes from all writing in the same minute."""
    if key.last_used_at is not None and now - key.last_used_at < LAST_USED_EVERY:
        return
    mono = time.monotonic()
    if mono - _last_used_written.get(key.key_hash, -1e9) < LAST_USED_EVERY.total_seconds():
        return
    _last_used_written[key.key_hash] = mono
    ApiKey.update(last_used_at=now).where(
        (ApiKey.id == key.id)
        & (ApiKey.last_used_at.is_null() | (ApiKey.last_used_at < now - LAST_USED_EVERY))
    ).execute()


# -- nonces -------------------------------------------------------------------------------

_next_cleanup = 0.0
_nonce_lock = SQLITE_WRITE_LOCK  # shared with write transactions and the request log's flusher
# The driver's errors as peewee's (so a locked or vanished database is one of
# portal.db.UNAVAILABLE_ERRORS, answered 503), for statements run on the raw connection.
_DRIVER_ERRORS = getattr(peewee, "__exception_wrapper__")


def _remember_nonce(application_id: int, nonce: str, now, key: ApiKey | None = None) -> bool:
    """Store (application, nonce); False when it was already there (a replay). On SQLite,
    when rate limits are counted in the database, the count of `key` for check 8 is taken
    in the same write transaction: one write lock per request instead of two."""
    global _next_cleanup
    mono = time.monotonic()
    if mono >= _next_cleanup:
        # Jitter spreads the clean-ups of several processes apart.
        _next_cleanup = mono + NONCE_CLEANUP_EVERY * (0.5 + random.random())
        with ephemeral_write():
            Nonce.delete().where(Nonce.expires_at < now).execute()
    params = (application_id, nonce, Nonce.expires_at.db_value(now + NONCE_LIFETIME))
    if not _serialise_writes():
        return database.execute_sql(_sql("nonce"), params).rowcount == 1
    # One writer per process at a time: threads queue on this lock (woken at once)
    # instead of on SQLite's busy handler, which sleeps 1, 2, 5, 10… ms between tries.
    # Ephemeral, the nonce and the rate count alike: see "Durability" in
    # docs/production.md (a write's own durable commit flushes its nonce to disk too).
    # The statements go to the driver's connection directly: peewee's transaction and
    # statement wrappers cost more Python than SQLite spends on them.
    with _nonce_lock, ephemeral_write(), _DRIVER_ERRORS:
        conn = database.connection()
        own = not database.in_transaction()  # else a part of the caller's transaction
        if own:
            conn.execute("BEGIN IMMEDIATE")
        try:
            stored = conn.execute(_sql("nonce"), params).rowcount == 1
            if stored and key is not None and not current_settings().redis_url:
                g.rate_window = rate_limits.hit(rate_subject(key), rate_limit_of(key), connection=conn)
            if own:
                conn.execute("COMMIT")
        except BaseException:
            if own and conn.in_transaction:
                conn.rollback()
            raise
    return stored


def _serialise_writes() -> bool:
    return isinstance(database.obj, peewee.SqliteDatabase)


# -- the gate -----------------------------------------------------------------------------


def bearer_token(authorization: str | None) -> str | None:
    """The token of an `Authorization: Bearer …` header, or None when there is no header."""
    if authorization is None or not authorization.strip():
        return None
    scheme, _, token = authorization.strip().partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise _unauthorized("malformed_api_key",
                            "The Authorization header must be `Bearer <api key>`.")
    return token.strip()


def find_key(plaintext: str, now=None) -> tuple[ApiKey | None, list[str]]:
    """The key with its application and partner, and the ciphertexts of the application's
    valid App Secrets: one statement, an indexed equality on the keyed hash."""
    now = now or utcnow()
    key_hash = hash_api_key(plaintext, current_settings().key_pepper)
    rows = database.execute_sql(_sql("key"), (AppSecret.expires_at.db_value(now), key_hash)).fetchall()
    if not rows:
        return None, []
    ciphertexts = [row[-1] for row in rows if row[-1] is not None]
    known = _known_keys.get(key_hash)
    if known is not None and known[0] == rows:  # the very rows of last time: the same objects serve
        return known[1], ciphertexts
    key = _key_of(rows[0])
    if len(_known_keys) >= _known_keys_max:
        _known_keys.clear()
    _known_keys[key_hash] = (rows, key)
    return key, ciphertexts


# The key objects made from the rows last read for each key hash (read-only to their users,
# shared by the threads of a process). A changed row (revoked, renamed, rolled, used a
# minute later) is a different row: a new object is made, the next request sees it.
_known_keys: dict[str, tuple[list, ApiKey]] = {}
_known_keys_max = 10_000


def _key_of(row) -> ApiKey:
    (key_id, name, mode, stored_hash, first4, last4, scopes, expires_at, last_used_at, revoked_at,
     allowed_ips, rate_limit, application_id, app_id, app_name, app_status, partner_id, partner_status, _) = row
    when = ApiKey.expires_at.python_value  # text on SQLite, datetime on PostgreSQL
    # __no_default__: rows as stored, without evaluating the models' defaults.
    partner = Partner(__no_default__=True, id=partner_id, status=partner_status)
    application = Application(__no_default__=True, id=application_id, app_id=app_id, name=app_name,
                              status=app_status, partner=partner)
    key = ApiKey(__no_default__=True, id=key_id, application=application, name=name, mode=mode, key_hash=stored_hash, first4=first4,
                 last4=last4, scopes=scopes, expires_at=when(expires_at), last_used_at=when(last_used_at),
                 revoked_at=when(revoked_at), allowed_ips=allowed_ips, rate_limit=rate_limit)
    return key


def verify_request(method: str, path: str, query, body: bytes, headers, remote_addr: str | None = None,
                   scope: str | None = None) -> Caller:
    """Checks 1–6 of DESIGN.md §4 in order; returns the Caller or raises ApiError.

    `path` is the percent-decoded path as the WSGI server hands it over, `query` the
    query's pairs from `portal.signing.query_pairs` (or the raw query string), `body` the
    raw bytes, `headers` any case-insensitive mapping, `remote_addr` the caller's address
    (after LOYALTY_TRUSTED_PROXIES, as Flask's request.remote_addr gives it), `scope` the
    endpoint's (check 7, raised by `require_scope` after this returns: a call it will refuse
    is not counted against the rate limit).
    """
    # 1. the key's presence and shape: no database work for garbage
    token = bearer_token(headers.get("Authorization"))
    if token is None:
        raise _unauthorized("missing_api_key",
                            "No API key: send `Authorization: Bearer <api key>`.")
    try:
        parse_api_key(token)
    except MalformedApiKey as exc:
        raise _unauthorized("malformed_api_key", f"Malformed API key: {exc}.") from None

    # 2. the key itself
    now = utcnow()
    key, ciphertexts = find_key(token, now)
    if key is None:
        raise _unauthorized("invalid_api_key", "Unknown API key.")
    g.gate_key = key  # a known key: its answer carries the RateLimit-* headers
    try:
        return _verify_with_key(key, ciphertexts, now, method, path, query, body, headers, remote_addr, scope)
    except ApiError as exc:
        # The request log files the refusal under this key, and the message points there.
        exc.key = key
        exc.log_hint = True
        raise


def _verify_with_key(key: ApiKey, ciphertexts: list[str], now, method: str, path: str, query, body: bytes,
                     headers, remote_addr: str | None = None, scope: str | None = None) -> Caller:
    """Checks 2 (revoked, expired) to 6 for a key that exists."""
    if key.revoked_at is not None:
        raise _unauthorized("revoked_api_key", "This API key has been revoked.")
    if key.expires_at is not None and key.expires_at <= now:
        raise _unauthorized("expired_api_key", "This API key has expired; roll it or create a new one.")

    # 3. the application
    app_id = headers.get("X-Loyalty-App-Id")
    if app_id is None or not app_id.strip():
        raise _unauthorized("missing_app_id", "Send the App ID in the X-Loyalty-App-Id header.")
    application = key.application
    if not hmac.compare_digest(app_id.strip().encode("utf-8", "replace"), application.app_id.encode("ascii")):
        raise _unauthorized("app_mismatch", "This API key does not belong to the application in X-Loyalty-App-Id.")

    # 4. the signature
    provided = headers.get("X-Loyalty-Signature")
    nonce = headers.get("X-Loyalty-Nonce")
    timestamp = headers.get("X-Loyalty-Timestamp")
    if provided is None or nonce is None:
        raise _unauthorized("missing_signature",
                            "Sign the request: send X-Loyalty-Timestamp, X-Loyalty-Nonce and X-Loyalty-Signature.")
    timestamp = (timestamp or "").strip()
    if not _TIMESTAMP_RE.match(timestamp):
        raise _unauthorized("timestamp_out_of_range",
                            "X-Loyalty-Timestamp must be the current time in whole unix seconds.")
    skew = int(timestamp) - int(time.time())
    if abs(skew) > TIMESTAMP_TOLERANCE:
        raise _unauthorized("timestamp_out_of_range",
                            f"X-Loyalty-Timestamp is {abs(skew)} s {'ahead of' if skew > 0 else 'behind'} the "
                            f"server's clock; at most {TIMESTAMP_TOLERANCE} s either way is accepted.")
    canonical = canonical_string(method, path, query, body,
                                 app_id=application.app_id, timestamp=timestamp, nonce=nonce)
    if not NONCE_RE.match(nonce):
        raise _unauthorized("invalid_signature",
                            "X-Loyalty-Nonce must be 16-64 characters of A-Z, a-z, 0-9, _ and -.",
                            canonical_string=canonical)
    if not (_SIGNATURE_RE.match(provided.strip())
            and signature_matches(_decrypted(application, ciphertexts), canonical, provided.strip())):
        raise _unauthorized("invalid_signature",
                            "The signature does not match. Compare canonical_string with the string you signed.",
                            canonical_string=canonical)
    g.rate_window = None
    # Only a call that checks 5-7 will let through counts against the key's limit (counted
    # here with the nonce on SQLite, in check_rate_limit otherwise): one refused for its
    # account, its address or its scope must not use up the integration's allowance.
    account_active = key.application.partner.is_active and application.is_active
    from_allowed_ip = not key.allowed_ips or ip_allowed(key.allowed_ips, remote_addr or "")
    scopes = frozenset(key.scope_list)
    in_scope = scope is None or scope in scopes
    counted = key if account_active and from_allowed_ip and in_scope else None
    if not _remember_nonce(application.id, nonce, now, counted):
        raise _unauthorized("replayed_request",
                            "This nonce was already used; sign every request (and every retry) with a new one.")

    # 5. the account
    if not account_active:
        if key.application.partner.is_pending:  # LOYALTY_SIGNUP=approval, not approved yet
            raise ApiError(403, "account_disabled", "This partner account is waiting for an operator's approval; "
                           "its API keys work once it is approved.")
        raise ApiError(403, "account_disabled", "This partner account or application is disabled.")

    # 6. where the call comes from
    if not from_allowed_ip:
        raise ip_not_allowed(remote_addr)

    _touch_last_used(key, now)
    return Caller(key=key, application=application, partner_id=application.partner_id,
                  mode=key.mode, scopes=scopes)


def require_scope(caller: Caller, scope: str | None) -> None:
    """Check 7: the key must carry the endpoint's scope (None: any valid key)."""
    if scope is not None and scope not in caller.scopes:
        error = ApiError(403, "insufficient_scope",
                         f"This API key lacks the {scope} scope. Roll or create a key with it.",
                         required_scope=scope)
        error.key = caller.key
        error.log_hint = True
        raise error


# -- guardrails (DESIGN.md §13) -----------------------------------------------------------


def ip_not_allowed(remote_addr: str | None) -> ApiError:
    """Check 6's refusal: the key has allowed IPs and the call comes from outside them (the
    networks are parsed once per stored text, the answer kept per address)."""
    return ApiError(403, "ip_not_allowed",
                    f"This API key is not allowed from {remote_addr or 'an unknown address'}: add the address "
                    "to the key's Allowed IPs in the portal, or call from an allowed one.")


def rate_subject(key: ApiKey) -> str:
    """The key's counter: by its keyed hash, which (unlike ids) no two databases share."""
    return "key:" + key.key_hash[:32]


def check_rate_limit(caller: Caller) -> None:
    """Check 8: count this call against the key's requests per minute (in Redis or the
    database, shared by every process); over it → 429 rate_limited with Retry-After."""
    window = g.get("rate_window")  # counted with the nonce (SQLite), or now
    if window is None:
        window = g.rate_window = rate_limits.hit(rate_subject(caller.key), rate_limit_of(caller.key))
    if not window.allowed:
        error = ApiError(429, "rate_limited",
                         f"This API key may make {window.limit} requests a minute; retry in {window.reset} s.",
                         headers=window.headers())
        error.key = caller.key  # the request log files the refusal under this key
        raise error


def rate_limit_headers(response):
    """RateLimit-Limit/-Remaining/-Reset on every /v1 answer to a known key (a call refused
    before its nonce was stored is not counted; its headers show the current window)."""
    key = g.get("gate_key")
    if key is not None:
        window = g.get("rate_window")
        if window is None:
            try:
                window = rate_limits.peek(rate_subject(key), rate_limit_of(key))
            except Exception:  # the store is away: the answer goes out without them
                return response
        response.headers.update(window.headers())
    return response
