"""Settings from the environment (and a `.env` file in the working folder).

Nothing is required for a first run: the data dir defaults to ./instance, the database to
a SQLite file inside it, and the server's own secrets (session key, encryption key, API
key pepper) are generated once into the data dir so that a restart keeps sessions valid
and stored App Secrets readable.
"""

from __future__ import annotations

import os
import re
import secrets
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from cryptography.fernet import Fernet
from dotenv import load_dotenv

SIGNUP_MODES = ("open", "invite", "approval")  # approval: an operator approves each new partner
PASSWORD_HASHING = ("argon2", "fast")


class ConfigError(Exception):
    """A setting is unusable; the message is one line meant for the operator."""


# The generated files of the data dir and the setting each one stands in for.
GENERATED_SETTINGS = {
    "secret_key": "LOYALTY_SECRET_KEY",
    "encryption_key": "LOYALTY_ENCRYPTION_KEY",
    "key_pepper": "LOYALTY_KEY_PEPPER",
}
GENERATED_FILES = tuple(GENERATED_SETTINGS)


@dataclass(frozen=True)
class Settings:
    data_dir: Path
    database_url: str
    secret_key: str
    encryption_keys: tuple[str, ...]
    key_pepper: bytes
    signup: str = "open"
    smtp_url: str | None = None
    sms_webhook: str | None = None
    mail_from: str = "loyalty@localhost"
    trusted_proxies: int = 0  # reverse proxies in front whose X-Forwarded-* headers count
    secure_cookies: bool = False  # session cookies only over HTTPS
    password_hashing: str = "argon2"  # "fast": argon2 at its minimum cost, for test suites
    session_idle_hours: int = 12  # a portal session ends after this long without a request
    metrics_token: str | None = None  # GET /metrics needs `Authorization: Bearer` this (unset: loopback only)
    public_url: str | None = None  # where partners reach the portal; the base of emailed links
    redis_url: str | None = None  # rate limits counted in Redis (else in the database)
    rate_limit_test: int = 600  # default requests per minute of a test key
    rate_limit_prod: int = 3000  # default requests per minute of a production key
    otp_per_app_hour: int = 200  # OTP codes per application and mode per hour
    request_log_days: int = 30  # /v1 request-log records older than this many days are deleted
    webhook_retry_seconds: tuple[int, ...] = (5, 300, 1800, 7200, 18000, 36000, 36000)  # waits between attempts
    webhook_allow_private: bool = False  # production endpoints may be http:// and private addresses
    webhook_lease_seconds: int = 60  # a worker's hold on a delivery; after a crash, retried after this
    log_format: str = "text"  # "json": one JSON object per log line (portal.logs; serve applies it)
    extra: dict = field(default_factory=dict)


def _private_dir(path: Path) -> None:
    """Create the data dir readable by its owner only (0700), and tighten an existing one:
    it holds the SQLite file and the server's own keys."""
    try:
        path.mkdir(mode=0o700, parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(f"cannot create data dir {path}: {exc.strerror}") from None
    try:
        info = path.stat()
        if info.st_mode & 0o077 and info.st_uid == os.getuid():
            path.chmod(0o700)
    except OSError:
        pass  # a dir another user owns stays as it is: the operator chose it


def _generated_once(data_dir: Path, name: str, make, *, create: bool = True) -> str:
    """Read a secret from the data dir, creating it (mode 0600) on first use (only with
    `create`: otherwise a missing file is a ConfigError, for the CLI to report)."""
    path = data_dir / name
    try:
        return path.read_text().strip()
    except FileNotFoundError:
        pass
    if not create:
        setting = GENERATED_SETTINGS[name]
        raise ConfigError(
            f"{setting} is not set and {path} does not exist: a newly generated one would not match "
            f"what the database was set up with. Set {setting} (or use --env-file), or let a command given --init (loyalty-portal migrate --init) generate it"
        )
    value = make()
    # O_EXCL: when several workers start at once, exactly one writes the file and the
    # others read what it wrote.
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return path.read_text().strip()
    with os.fdopen(fd, "w") as handle:
        handle.write(value + "\n")
    return value


def open_private(path: str | Path, mode: str = "wb", *, exclusive: bool = False):
    """Open `path` for writing, readable by its owner only (0600) whatever the umask: for
    the files the platform writes that hold secrets or data (backups and what restore
    writes back). A file that existed is truncated and tightened to 0600 first; with
    `exclusive` one that exists is refused (FileExistsError) instead."""
    flags = os.O_WRONLY | os.O_CREAT | (os.O_EXCL if exclusive else os.O_TRUNC)
    fd = os.open(path, flags, 0o600)
    try:
        os.fchmod(fd, 0o600)
    except OSError:
        pass  # a file another user owns stays as it is
    return os.fdopen(fd, mode)


def load_settings(overrides: dict | None = None, *, create: bool = True) -> Settings:
    """Build the settings from env vars, `.env` and `overrides` (tests pass a dict).

    `create=False` (the CLI without --init) creates nothing: a missing data dir or a
    server secret that would have to be generated raises ConfigError instead."""
    load_dotenv(Path.cwd() / ".env", override=False)
    overrides = dict(overrides or {})

    def get(name: str, default=None):
        if name in overrides:
            return overrides.pop(name)
        return os.environ.get(f"LOYALTY_{name}", default)

    # Read as locate() reads them (blank: unset; spaces around a value dropped), so the
    # location a command announces is the one it uses.
    data_dir = Path(str(get("DATA_DIR") or "").strip() or "./instance").expanduser().resolve()
    if not create and not data_dir.is_dir():
        raise ConfigError(f"data dir {data_dir} does not exist")
    _private_dir(data_dir)

    database_url = str(get("DATABASE_URL") or "").strip() or f"sqlite:///{data_dir / 'loyalty.db'}"
    if not database_url.startswith(("sqlite:///", "postgresql://", "postgres://")):
        raise ConfigError(
            "LOYALTY_DATABASE_URL must start with sqlite:/// or postgresql:// "
            f"(got {database_url.split(':', 1)[0]}:…)"
        )

    secret_key = get("SECRET_KEY") or _generated_once(
        data_dir, "secret_key", lambda: secrets.token_urlsafe(48), create=create
    )
    raw_keys = get("ENCRYPTION_KEY") or _generated_once(
        data_dir, "encryption_key", lambda: Fernet.generate_key().decode(), create=create
    )
    # Several comma-separated keys rotate the encryption key: the first encrypts, all decrypt.
    encryption_keys = tuple(k.strip() for k in raw_keys.split(",") if k.strip())
    for key in encryption_keys:
        try:
            Fernet(key)
        except (ValueError, TypeError):
            raise ConfigError(
                "LOYALTY_ENCRYPTION_KEY must be one or more comma-separated Fernet keys "
                "(32 url-safe base64-encoded bytes)"
            ) from None
    pepper = get("KEY_PEPPER") or _generated_once(
        data_dir, "key_pepper", lambda: secrets.token_urlsafe(32), create=create
    )

    signup = (get("SIGNUP", "open") or "open").lower()
    if signup not in SIGNUP_MODES:
        raise ConfigError("LOYALTY_SIGNUP must be 'open', 'invite' or 'approval'")

    raw_proxies = str(get("TRUSTED_PROXIES", "0") or "0").strip()
    if not raw_proxies.isdigit() or int(raw_proxies) > 10:
        raise ConfigError("LOYALTY_TRUSTED_PROXIES must be the number of reverse proxies in front (0-10)")

    raw_secure = str(get("SECURE_COOKIES", "0") or "0").strip().lower()
    if raw_secure not in ("0", "1", "true", "false", "yes", "no"):
        raise ConfigError("LOYALTY_SECURE_COOKIES must be 1 (served over HTTPS) or 0")

    password_hashing = (get("PASSWORD_HASHING", "argon2") or "argon2").strip().lower()
    if password_hashing not in PASSWORD_HASHING:
        raise ConfigError("LOYALTY_PASSWORD_HASHING must be 'argon2' (the default) or 'fast' (test suites only)")

    raw_idle = str(get("SESSION_IDLE_HOURS", "12") or "12").strip()
    if not raw_idle.isdigit() or not 1 <= int(raw_idle) <= 8760:
        raise ConfigError("LOYALTY_SESSION_IDLE_HOURS must be a whole number of hours from 1 to 8760")

    public_url = (get("PUBLIC_URL") or "").strip().rstrip("/") or None
    if public_url is not None:
        parts = urlsplit(public_url)
        if parts.scheme not in ("http", "https") or not parts.netloc or parts.query or parts.fragment:
            raise ConfigError("LOYALTY_PUBLIC_URL must be the portal's address, like https://partners.example.com")

    redis_url = (get("REDIS_URL") or "").strip() or None
    if redis_url is not None and not redis_url.startswith(("redis://", "rediss://", "unix://")):
        raise ConfigError("LOYALTY_REDIS_URL must start with redis://, rediss:// or unix://")
    if redis_url is not None:
        import importlib.util

        if importlib.util.find_spec("limits") is None or importlib.util.find_spec("redis") is None:
            raise ConfigError("LOYALTY_REDIS_URL needs the redis extra: pip install 'loyalty-portal[redis]'")
    limits = {}
    for name, default in (("RATE_LIMIT_TEST", 600), ("RATE_LIMIT_PROD", 3000), ("OTP_PER_APP_HOUR", 200)):
        raw = str(get(name, default) or default).strip()
        if not raw.isdigit() or not 1 <= int(raw) <= 1_000_000:
            raise ConfigError(f"LOYALTY_{name} must be a whole number from 1 to 1000000")
        limits[name.lower()] = int(raw)
    raw_log_days = str(get("REQUEST_LOG_DAYS", "30") or "30").strip()
    if not raw_log_days.isdigit() or not 1 <= int(raw_log_days) <= 3650:
        raise ConfigError("LOYALTY_REQUEST_LOG_DAYS must be a whole number of days from 1 to 3650")
    raw_retries = str(get("WEBHOOK_RETRY_SECONDS", "") or "").strip()
    retries = Settings.webhook_retry_seconds
    if raw_retries:
        parts = [part.strip() for part in raw_retries.split(",")]
        if not all(part.isdigit() and int(part) <= 604800 for part in parts):
            raise ConfigError("LOYALTY_WEBHOOK_RETRY_SECONDS must be comma-separated whole seconds (each at most 604800), like 5,300,1800")
        retries = tuple(int(part) for part in parts)
    raw_private = str(get("WEBHOOK_ALLOW_PRIVATE", "0") or "0").strip().lower()
    if raw_private not in ("0", "1", "true", "false", "yes", "no"):
        raise ConfigError("LOYALTY_WEBHOOK_ALLOW_PRIVATE must be 1 (production endpoints may be private addresses) or 0")
    raw_lease = str(get("WEBHOOK_LEASE_SECONDS", "60") or "60").strip()
    if not raw_lease.isdigit() or not 12 <= int(raw_lease) <= 3600:
        raise ConfigError("LOYALTY_WEBHOOK_LEASE_SECONDS must be a whole number of seconds from 12 to 3600")
    from portal.logs import log_format as checked_log_format

    log_format = checked_log_format(get("LOG_FORMAT") or "")

    return Settings(
        data_dir=data_dir,
        database_url=database_url,
        secret_key=secret_key,
        encryption_keys=encryption_keys,
        key_pepper=pepper.encode(),
        signup=signup,
        smtp_url=get("SMTP_URL") or None,
        sms_webhook=get("SMS_WEBHOOK") or None,
        mail_from=get("MAIL_FROM", "loyalty@localhost"),
        trusted_proxies=int(raw_proxies),
        secure_cookies=raw_secure in ("1", "true", "yes"),
        password_hashing=password_hashing,
        session_idle_hours=int(raw_idle),
        metrics_token=(get("METRICS_TOKEN") or "").strip() or None,
        public_url=public_url,
        redis_url=redis_url,
        **limits,
        request_log_days=int(raw_log_days),
        webhook_retry_seconds=retries,
        webhook_allow_private=raw_private in ("1", "true", "yes"),
        webhook_lease_seconds=int(raw_lease),
        log_format=log_format,
        extra=overrides,
    )


# -- where the settings point, before anything is created (the CLI's first line) ----------

@dataclass(frozen=True)
class Location:
    """The data dir and database the settings name, worked out without creating anything."""

    data_dir: Path
    database_url: str
    configured: bool  # LOYALTY_DATA_DIR or LOYALTY_DATABASE_URL is set (env, .env, --env-file)


def locate() -> Location:
    """Which data dir and database `load_settings` would use (it creates nothing)."""
    load_dotenv(Path.cwd() / ".env", override=False)
    raw_dir = (os.environ.get("LOYALTY_DATA_DIR") or "").strip()
    raw_url = (os.environ.get("LOYALTY_DATABASE_URL") or "").strip()
    data_dir = Path(raw_dir or "./instance").expanduser().resolve()
    return Location(data_dir=data_dir, database_url=raw_url or f"sqlite:///{data_dir / 'loyalty.db'}",
                    configured=bool(raw_dir or raw_url))


def masked_url(url: str) -> str:
    """A database URL fit to print: its password (if any) replaced by ***."""
    try:
        parts = urlsplit(url)
        password = parts.password
    except ValueError:
        return url.split("://", 1)[0] + "://…"
    if not password:
        return url
    user = parts.username or ""
    host = parts.netloc.rsplit("@", 1)[1]
    return parts._replace(netloc=f"{user}:***@{host}").geturl()


_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def read_env_file(path: str | Path) -> dict[str, str]:
    """KEY=VALUE lines as systemd's EnvironmentFile= reads them, with no shell involved:
    blank lines and lines starting with # or ; are skipped, a value may be wrapped in
    single or double quotes, and everything else (`&`, `$`, spaces) is taken literally.
    A line that is not KEY=VALUE is a ConfigError naming its number (never its text,
    which may hold a secret)."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else "not UTF-8 text"
        raise ConfigError(f"cannot read env file {path}: {reason}") from None
    values: dict[str, str] = {}
    for number, line in enumerate(text.splitlines(), 1):
        stripped = line.strip()
        if not stripped or stripped[0] in "#;":
            continue
        name, sep, value = stripped.partition("=")
        name = name.strip()
        if not sep or not _ENV_NAME.match(name):
            raise ConfigError(f"env file {path}, line {number}: expected NAME=VALUE")
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        values[name] = value
    return values


_active: Settings | None = None


def use_settings(settings: Settings) -> Settings:
    """Make `settings` the process's settings (create_app does this, as it binds the
    database: one configuration per process)."""
    global _active
    _active = settings
    return settings


def current_settings() -> Settings:
    """The settings of the app this process runs (set by create_app)."""
    if _active is None:
        raise RuntimeError("no settings yet: create_app() (or config.use_settings) comes first")
    return _active
