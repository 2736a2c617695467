"""The webhook delivery worker: claims due deliveries, POSTs them, records what came back.

`loyalty-portal worker` runs it alone; `loyalty-portal serve` starts it as a child process
of its own (and starts it again if it dies), `serve --no-worker` leaves it out. Several
workers may run at once, on one machine (SQLite) or many (PostgreSQL): a delivery is
leased to one of them per attempt (`portal.domain.webhooks.claim_due`).

One POST (DESIGN.md §12): 10 s in all, no redirects followed, 2xx is success, at most
64 KiB of the response read (the first 2 KiB kept). The address is resolved, checked and
connected to in one step (the connection is pinned to the address that was checked), so a
name that resolves to a public address for the check and to 127.0.0.1 for the connection
cannot slip past the production rule.
"""

from __future__ import annotations

import email.utils
import http.client
import os
import signal
import socket
import ssl
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timezone
from urllib.parse import urlsplit

from portal.config import current_settings
from portal.db import UNAVAILABLE_ERRORS, hold_sqlite_file_open, release_connection
from portal.domain import webhooks
from portal.logs import first_line, get_logger, where_raised
from portal.models import utcnow

log = get_logger(__name__)

TIMEOUT_SECONDS = 10.0
READ_LIMIT = 64 * 1024  # a bigger response is a failed attempt
THREADS = 8  # attempts in flight per worker process: one hanging endpoint holds one of them
POLL_SECONDS = 0.1  # how often an idle worker looks for due deliveries (one indexed read)
HEARTBEAT_SECONDS = 5.0
USER_AGENT = "loyalty-webhooks/1"


class _AttemptFailed(Exception):
    """The attempt failed before a response arrived; the message is its reason."""


def _resolve(host: str, port: int, mode: str) -> list[str]:
    """The addresses to try, after the production rule refused none of them."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError):
        raise _AttemptFailed(f"could not resolve {host}") from None
    addresses = list(dict.fromkeys(info[4][0] for info in infos))
    if mode == "prod" and not current_settings().webhook_allow_private:
        for address in addresses:
            refusal = webhooks.address_refusal(address)
            if refusal:
                named = refusal if refusal.startswith(host + ",") else f"{host} is {refusal}"
                raise _AttemptFailed(f"not sent: {named} (production endpoints must be public)")
    return addresses


class _PinnedConnection(http.client.HTTPConnection):
    """HTTP to one checked address, whatever the name resolves to by now."""

    def __init__(self, host, port, address, timeout):
        super().__init__(host, port, timeout=timeout)
        self._address = address

    def connect(self):
        self.sock = socket.create_connection((self._address, self.port), self.timeout)


class _PinnedTlsConnection(http.client.HTTPSConnection):
    """HTTPS to one checked address; the certificate is checked against the URL's host."""

    def __init__(self, host, port, address, timeout, context):
        super().__init__(host, port, timeout=timeout, context=context)
        self._address = address

    def connect(self):
        sock = socket.create_connection((self._address, self.port), self.timeout)
        self.sock = self._context.wrap_socket(sock, server_hostname=self.host)


_tls_context = ssl.create_default_context()


class _Watchdog:
    """Cuts off attempts past their deadline (one thread for all of them, so a slow drip
    of bytes cannot stretch an attempt past 10 s, and no attempt starts a thread)."""

    def __init__(self):
        self._lock = threading.Lock()
        self._watched: dict[int, tuple[float, object, threading.Event]] = {}
        self._thread: threading.Thread | None = None

    def watch(self, conn, deadline: float, fired: threading.Event) -> int:
        with self._lock:
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, daemon=True, name="webhook-watchdog")
                self._thread.start()
            self._watched[id(conn)] = (deadline, conn, fired)
        return id(conn)

    def forget(self, token: int) -> None:
        with self._lock:
            self._watched.pop(token, None)

    def _run(self) -> None:
        while True:
            time.sleep(0.1)
            now = time.monotonic()
            with self._lock:
                late = [(key, conn, fired) for key, (deadline, conn, fired) in self._watched.items() if deadline <= now]
                for key, _, _ in late:
                    del self._watched[key]
            for _, conn, fired in late:
                fired.set()
                try:
                    conn.sock.shutdown(socket.SHUT_RDWR)
                except (OSError, AttributeError):
                    pass


_watchdog = _Watchdog()


def post(url: str, body: bytes, headers: dict[str, str], mode: str) -> webhooks.Outcome:
    """One POST of a webhook; never raises (every failure is an Outcome with its reason)."""
    started = time.monotonic()
    conn = None
    watched = None
    timed_out = threading.Event()

    def elapsed_ms() -> int:
        return int((time.monotonic() - started) * 1000)

    try:
        parts = urlsplit(url)
        if mode == "prod" and parts.scheme != "https" and not current_settings().webhook_allow_private:
            raise _AttemptFailed("not sent: a production endpoint must use https://")
        host = parts.hostname or ""
        port = parts.port or (443 if parts.scheme == "https" else 80)
        target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        addresses = _resolve(host, port, mode)
        last_error = None
        for address in addresses:
            remaining = TIMEOUT_SECONDS - (time.monotonic() - started)
            if remaining <= 0:
                break
            if parts.scheme == "https":
                conn = _PinnedTlsConnection(host, port, address, remaining, _tls_context)
            else:
                conn = _PinnedConnection(host, port, address, remaining)
            try:
                conn.connect()
                break
            except OSError as exc:
                last_error = exc
                conn.close()
                conn = None
        if conn is None:
            if isinstance(last_error, ssl.SSLError):
                raise _AttemptFailed(f"TLS failed: {last_error.reason or 'handshake failed'}")
            if isinstance(last_error, (socket.timeout, TimeoutError)) or last_error is None:
                raise _AttemptFailed("timed out connecting (10 s)")
            raise _AttemptFailed(f"could not connect: {last_error.strerror or last_error.__class__.__name__}")

        # The whole attempt, however slowly the other side drips its answer, ends at 10 s.
        watched = _watchdog.watch(conn, started + TIMEOUT_SECONDS, timed_out)
        conn.request("POST", target, body=body, headers={
            **headers, "Content-Type": "application/json", "User-Agent": USER_AGENT, "Connection": "close",
        })
        response = conn.getresponse()
        status = response.status
        declared = response.getheader("Content-Length")
        if declared and declared.strip().isdigit() and int(declared) > READ_LIMIT:
            return webhooks.Outcome(False, status, elapsed_ms(),
                                    error=f"answered {status} with a {int(declared)}-byte body (over 64 KiB): not read")
        data = response.read(READ_LIMIT + 1)
        if timed_out.is_set():  # the watchdog cut the answer short
            return webhooks.Outcome(False, status, elapsed_ms(), data[:webhooks.EXCERPT_BYTES].decode("utf-8", "replace"),
                                    error=f"timed out (10 s) while reading the {status} answer")
        if len(data) > READ_LIMIT:
            return webhooks.Outcome(False, status, elapsed_ms(), data[:webhooks.EXCERPT_BYTES].decode("utf-8", "replace"),
                                    error=f"answered {status} with a body over 64 KiB: not read")
        excerpt = data[:webhooks.EXCERPT_BYTES].decode("utf-8", "replace")
        if 200 <= status < 300:
            return webhooks.Outcome(True, status, elapsed_ms(), excerpt)
        retry_after = _retry_after(response.getheader("Retry-After")) if status in (429, 503) else None
        if 300 <= status < 400:
            error = f"answered {status} (a redirect, not followed)"
        elif status == 410:
            error = "answered 410 Gone: the endpoint is disabled"
        else:
            error = f"answered {status}"
        return webhooks.Outcome(False, status, elapsed_ms(), excerpt, error=error, retry_after=retry_after)
    except _AttemptFailed as exc:
        return webhooks.Outcome(False, None, elapsed_ms(), error=str(exc))
    except (socket.timeout, TimeoutError):
        return webhooks.Outcome(False, None, elapsed_ms(), error="timed out (10 s)")
    except (OSError, http.client.HTTPException) as exc:
        if timed_out.is_set():
            return webhooks.Outcome(False, None, elapsed_ms(), error="timed out (10 s)")
        reason = getattr(exc, "strerror", None) or exc.__class__.__name__
        return webhooks.Outcome(False, None, elapsed_ms(), error=f"connection failed: {reason}")
    finally:
        if watched is not None:
            _watchdog.forget(watched)
        if conn is not None:
            conn.close()


def _retry_after(value: str | None) -> int | None:
    """Seconds from a Retry-After header (seconds or an HTTP date), at most a day."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return min(int(value), 86400)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    return max(0, min(int((when - datetime.now(timezone.utc)).total_seconds()), 86400))


def attempt(claimed: webhooks.Claimed) -> str | None:
    """Make one leased attempt and record it; returns the delivery's new status."""
    started_at = utcnow()
    try:
        headers = webhooks.signed_headers(claimed.endpoint, claimed.event_id, claimed.body, int(time.time()))
    except ValueError:  # the secret cannot be decrypted with LOYALTY_ENCRYPTION_KEY
        outcome = webhooks.Outcome(False, error="not sent: the signing secret cannot be decrypted")
    else:
        outcome = post(claimed.endpoint.url, claimed.body.encode("utf-8"), headers, claimed.endpoint.mode)
    status = webhooks.record_outcome(claimed, outcome, started_at=started_at)
    log.info("webhook %s to %s attempt %d: %s%s", claimed.event_id, claimed.endpoint.public_id, claimed.attempt,
             "ok" if outcome.succeeded else "failed", "" if outcome.succeeded else f" ({outcome.error})")
    return status


def deliver_due(limit: int = 100) -> int:
    """One synchronous round (tests, benchmarks): claim what is due and attempt it, one
    after the other. Returns how many attempts were made."""
    claimed = webhooks.claim_due(limit)
    for item in claimed:
        attempt(item)
    return len(claimed)


REMINDERS_SECONDS = 600  # how often the worker looks for keys to remind of their expiry


def _send_expiry_reminders() -> None:
    """api_key.expiring and the reminder emails, once per key (portal.domain.guardrails);
    on a pool thread, so a slow mail server never holds up deliveries."""
    from portal.domain.guardrails import send_expiry_reminders

    try:
        count = send_expiry_reminders()
        if count:
            log.info("reminded %d API key(s) of their expiry", count)
    except Exception as exc:  # the next round tries again
        log.warning("expiry reminders failed: %s", where_raised(exc))
        release_connection()


class Worker:
    """The delivery loop of one process: a pool of THREADS attempts in flight."""

    def __init__(self, threads: int = THREADS, poll_seconds: float = POLL_SECONDS):
        self.threads = threads
        self.poll_seconds = poll_seconds
        self.stopping = threading.Event()
        self._in_flight = 0
        self._lock = threading.Lock()
        self._slot_freed = threading.Event()

    def _run_one(self, claimed: webhooks.Claimed) -> None:
        # Each pool thread keeps its connection between attempts; one that failed is dropped.
        try:
            attempt(claimed)
        except UNAVAILABLE_ERRORS as exc:  # the lease runs out and the delivery is taken again
            log.warning("webhook %s not recorded, database unavailable: %s", claimed.event_id, first_line(exc))
            release_connection()
        except Exception as exc:
            log.error("webhook %s attempt raised %s", claimed.event_id, where_raised(exc))
            release_connection()
        finally:
            with self._lock:
                self._in_flight -= 1
            self._slot_freed.set()

    def run(self) -> None:
        """Deliver until `stopping` is set; in-flight attempts finish first."""
        pool = ThreadPoolExecutor(max_workers=self.threads, thread_name_prefix="webhook")
        next_beat = next_reminders = 0.0
        name = webhooks.worker_name()
        hold_sqlite_file_open()  # connections come and go per attempt; the WAL stays in place
        log.info("webhook worker %s started", name)
        try:
            while not self.stopping.is_set():
                try:
                    if time.monotonic() >= next_beat:
                        webhooks.beat(name)
                        next_beat = time.monotonic() + HEARTBEAT_SECONDS
                    if time.monotonic() >= next_reminders:  # keys expiring within 7 days (#13)
                        next_reminders = time.monotonic() + REMINDERS_SECONDS
                        pool.submit(_send_expiry_reminders)
                    with self._lock:
                        free = self.threads - self._in_flight
                    claimed = webhooks.claim_due(free) if free > 0 else []
                except UNAVAILABLE_ERRORS as exc:
                    log.warning("webhook worker: database unavailable: %s", first_line(exc))
                    release_connection()
                    self.stopping.wait(2.0)
                    continue
                for item in claimed:
                    with self._lock:
                        self._in_flight += 1
                    pool.submit(self._run_one, item)
                if free <= 0:  # every thread busy: go on as soon as one is free
                    self._slot_freed.wait(self.poll_seconds)
                    self._slot_freed.clear()
                elif len(claimed) < free:  # nothing more is due now
                    self.stopping.wait(self.poll_seconds)
        finally:
            pool.shutdown(wait=True)
            release_connection()
            log.info("webhook worker %s stopped", name)


def _die_with_parent() -> None:
    """Linux: end this process when the `serve` that started it dies (even by SIGKILL)."""
    try:
        import ctypes

        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def run_forever(*, parent_pid: int | None = None) -> None:
    """Run the worker in this process until SIGTERM or SIGINT (or the parent's death)."""
    worker = Worker()

    def stop(signum, frame):
        worker.stopping.set()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    if parent_pid:
        _die_with_parent()

        def watch_parent():
            while not worker.stopping.wait(1.0):
                if os.getppid() != parent_pid:
                    worker.stopping.set()

        threading.Thread(target=watch_parent, daemon=True, name="parent-watch").start()
    worker.run()


class ChildWorker:
    """`serve`'s delivery worker: a child process (`loyalty-portal worker --parent PID`),
    started again with a growing pause if it dies, stopped when `serve` stops. It is a
    process of its own, not a thread of a web worker, so gunicorn restarting its workers
    never interrupts a delivery, and a crashed worker costs no web request."""

    def __init__(self):
        self.process = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _spawn(self):
        import subprocess
        import sys

        return subprocess.Popen([sys.executable, "-m", "portal.cli", "worker", "--parent", str(os.getpid())])

    def start(self) -> None:
        self.process = self._spawn()
        self._thread = threading.Thread(target=self._supervise, daemon=True, name="webhook-supervisor")
        self._thread.start()

    def _supervise(self) -> None:
        pause = 1.0
        while not self._stop.wait(1.0):
            if self.process.poll() is None:
                pause = 1.0
                continue
            log.warning("webhook worker (pid %s) ended; starting it again in %.0f s", self.process.pid, pause)
            if self._stop.wait(pause):
                return
            pause = min(pause * 2, 60.0)
            self.process = self._spawn()

    def stop(self, timeout: float = 12.0) -> None:
        self._stop.set()
        process = self.process
        if process is None or process.poll() is not None:
            return
        process.terminate()
        try:
            process.wait(timeout)
        except Exception:
            process.kill()
