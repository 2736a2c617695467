"""Settings from the environment (and a `.env` file in the working folder).

Nothing is required for a first run: the data dir defaults to ./instance, the database to
a SQLite file inside it, and the server's own secrets (session key, encryption key, API
key pepper) are generated once into the data dir so that a restart keeps sessions valid
and stored App Secrets readable.
"""

from __future__ import annotations

import os
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


def _generated_once(data_dir: Path, name: str, make) -> str:
    """Read a secret from the data dir, creating it (mode 0600) on first use."""
    path = data_dir / name
    try:
        return path.read_text().strip()
    except FileNotFoundError:
        pass
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


GENERATED_FILES = ("secret_key", "encryption_key", "key_pepper")  # made once into the data dir


def where_data_lives() -> tuple[Path, str]:
    """The data dir and database URL the settings would use, found without creating or
    generating anything (for `loyalty-portal restore`, which needs an empty data dir)."""
    load_dotenv(Path.cwd() / ".env", override=False)
    data_dir = Path(os.environ.get("LOYALTY_DATA_DIR", "./instance")).expanduser().resolve()
    return data_dir, os.environ.get("LOYALTY_DATABASE_URL") or f"sqlite:///{data_dir / 'loyalty.db'}"


def load_settings(overrides: dict | None = None) -> Settings:
    """Build the settings from env vars, `.env` and `overrides` (tests pass a dict)."""
    load_dotenv(Path.cwd() / ".env", override=False)
    overrides = dict(overrides or {})

    def get(name: str, default=None):
        if name in overrides:
            return overrides.pop(name)
        return os.environ.get(f"LOYALTY_{name}", default)

    data_dir = Path(get("DATA_DIR", "./instance")).expanduser().resolve()
    _private_dir(data_dir)

    database_url = get("DATABASE_URL") or f"sqlite:///{data_dir / 'loyalty.db'}"
    if not database_url.startswith(("sqlite:///", "postgresql://", "postgres://")):
        raise ConfigError(
            "LOYALTY_DATABASE_URL must start with sqlite:/// or postgresql:// "
            f"(got {database_url.split(':', 1)[0]}:…)"
        )

    secret_key = get("SECRET_KEY") or _generated_once(
        data_dir, "secret_key", lambda: secrets.token_urlsafe(48)
    )
    raw_keys = get("ENCRYPTION_KEY") or _generated_once(
        data_dir, "encryption_key", lambda: Fernet.generate_key().decode()
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
        data_dir, "key_pepper", lambda: secrets.token_urlsafe(32)
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
        extra=overrides,
    )


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
