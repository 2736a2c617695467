"""The floor under bench/wrk_gate.py's signed read: the work of
`GET /v1/members/{id}/stamps` itself (its statements, hashes and JSON) with nothing around
it, in a bare WSGI app.

What it keeps: the key's keyed hash, the gate's statement that finds the key with its
application and valid App Secrets, the HMAC-SHA256 of the canonical string checked against
the secrets, the nonce and the key's rate count written in one `BEGIN IMMEDIATE`
transaction under the portal's writer lock (at synchronous=NORMAL, as the gate writes
them), the domain's statements for the member and the card balances, the answer's JSON.
Each thread has its own sqlite3 connection, kept at NORMAL; rows stay tuples. What it
leaves out: Flask, peewee's connection handling and model objects, the log line, the
request-log row, the metrics, the RateLimit-* and security headers, the error shapes, and
the checks that cost microseconds (timestamp window, revoked or expired key, account
status, allowed IPs, scope, the count against the limit). It answers 401 for an unknown
key, a bad signature or a replay and 404 for an unknown member, nothing else.

So its share of bare Flask is a lower bound for the documented read as this platform
stores it (a nonce and a rate count written to the shared database on every call) on this
stack (Python, SQLite, gunicorn): an implementation of it pays at least this much.

Served by wrk_gate.py's bare server (`server.py BIND WORKERS floor_app`) with the SQLite
portal's environment (LOYALTY_DATA_DIR); answers GET /healthz too, for the readiness wait.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time

import peewee

from portal import db, rate_limits
from portal.api import gate
from portal.config import load_settings, use_settings
from portal.credentials import hash_api_key
from portal.domain.ledger import stamp_balances_sql
from portal.domain.members import find_member_sql
from portal.models import AppSecret, Nonce, utcnow
from portal.signing import canonical_string, query_pairs, signature_matches

settings = load_settings(None, create=False)
use_settings(settings)
_FILE = str(db.sqlite_path(settings.database_url))
db.bind(peewee.SqliteDatabase(_FILE))  # for the statements' SQL and the writer lock's file; never connected
# The statements as the gate, the rate limiter and the domain render and cache them.
_KEY, _NONCE, _HIT = gate._sql("key"), gate._sql("nonce"), rate_limits._sql("hit")
_MEMBER, _BALANCES = find_member_sql(), stamp_balances_sql()

_OK = b'{"status":"ok"}'
_JSON = ("Content-Type", "application/json")
_local = threading.local()


def _connection() -> sqlite3.Connection:
    conn = getattr(_local, "conn", None)
    if conn is None:
        conn = _local.conn = sqlite3.connect(_FILE, isolation_level=None, timeout=10)
        for pragma in ("foreign_keys = 1", "busy_timeout = 10000", "synchronous = normal"):
            conn.execute(f"PRAGMA {pragma}")
    return conn


def app(environ, start_response):
    if environ["PATH_INFO"] == "/healthz":
        start_response("200 OK", [_JSON, ("Content-Length", str(len(_OK)))])
        return [_OK]
    status, body = _read(environ, _connection())
    start_response(status, [_JSON, ("Content-Length", str(len(body)))])
    return [body]


def _read(environ, conn: sqlite3.Connection) -> tuple[str, bytes]:
    now = utcnow()
    token = environ.get("HTTP_AUTHORIZATION", "").partition(" ")[2]
    rows = conn.execute(_KEY, (AppSecret.expires_at.db_value(now), hash_api_key(token, settings.key_pepper))).fetchall()
    if not rows:
        return "401 UNAUTHORIZED", b'{"error":"invalid_api_key"}'
    row = rows[0]
    mode, key_hash, application_id, app_id, partner_id = row[2], row[3], row[12], row[13], row[16]
    secrets = [gate._secrets.decrypt(r[-1]) for r in rows if r[-1] is not None]  # decrypted once per process
    path, nonce = environ["PATH_INFO"], environ.get("HTTP_X_LOYALTY_NONCE", "")
    canonical = canonical_string("GET", path, query_pairs(environ.get("QUERY_STRING", "")), b"", app_id=app_id,
                                 timestamp=environ.get("HTTP_X_LOYALTY_TIMESTAMP", ""), nonce=nonce)
    if not signature_matches(secrets, canonical, environ.get("HTTP_X_LOYALTY_SIGNATURE", "")):
        return "401 UNAUTHORIZED", b'{"error":"invalid_signature"}'
    with db.SQLITE_WRITE_LOCK:
        conn.execute("BEGIN IMMEDIATE")
        try:
            expires = Nonce.expires_at.db_value(now + gate.NONCE_LIFETIME)
            stored = conn.execute(_NONCE, (application_id, nonce, expires)).rowcount == 1
            if stored:
                window = int(time.time()) // 60 * 60
                conn.execute(_HIT, ("key:" + key_hash[:32], window, 1, 1)).fetchone()
            conn.execute("COMMIT")
        except BaseException:
            conn.rollback()
            raise
    if not stored:
        return "401 UNAUTHORIZED", b'{"error":"replayed_request"}'
    member_id = path.split("/")[3]
    member = conn.execute(_MEMBER, (member_id, partner_id, mode)).fetchone()
    if member is None:
        return "404 NOT FOUND", b'{"error":"not_found"}'
    cards = conn.execute(_BALANCES, (0, member[0], partner_id)).fetchall()
    data = [{"card_id": card_id, "card_name": name, "balance": balance} for card_id, name, balance in cards]
    return "200 OK", json.dumps({"object": "stamp_balances", "member_id": member_id, "data": data}).encode()
