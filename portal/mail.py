"""Email the platform sends: team invites, password resets, production OTP codes.

`send_mail(to, subject, text)` delivers through SMTP when `LOYALTY_SMTP_URL` is set
(`smtp://user:pass@host:port`, `?starttls=1` to upgrade, `smtps://` for TLS from the
start) from `LOYALTY_MAIL_FROM`. Without it the message is written to the server console
(the `portal.mail` log): on a first run, the operator reads a reset link there, as they do
production OTP codes. The console *is* the delivery channel then, so it prints the
message whole on purpose.
"""

from __future__ import annotations

import logging
import smtplib
import ssl
import threading
from email.message import EmailMessage
from urllib.parse import parse_qs, unquote, urlsplit

from portal.config import current_settings
from portal.logs import first_line, get_logger

log = get_logger("portal.mail")

SMTP_TIMEOUT_SECONDS = 10


class MailError(Exception):
    """The mail server refused or could not be reached; the message says which (one line,
    no credentials)."""


def mail_configured() -> bool:
    """True when messages leave the machine (SMTP), False when they go to the console."""
    return bool(current_settings().smtp_url)


def send_mail(to: str, subject: str, text: str) -> None:
    """Deliver a plain-text message to `to` (SMTP when configured, else the console).

    Raises MailError when SMTP is configured and fails.
    """
    settings = current_settings()
    if settings.smtp_url:
        send_smtp(settings.smtp_url, settings.mail_from, to, subject, text)
    else:
        _console(to, subject, text)


def send_mail_in_background(to: str, subject: str, text: str) -> None:
    """`send_mail` on a thread of its own, for answers that must not depend on it: a reset
    request answers as fast for an unknown email as for a known one. Failures are logged."""
    settings = current_settings()

    def deliver():
        try:
            if settings.smtp_url:
                send_smtp(settings.smtp_url, settings.mail_from, to, subject, text)
            else:
                _console(to, subject, text)
        except MailError as exc:
            log.error("mail to %s (%s) failed: %s", to, subject, exc)

    threading.Thread(target=deliver, name="mail", daemon=True).start()


def send_smtp(url: str, mail_from: str, to: str, subject: str, text: str) -> None:
    """One message through the SMTP server of `url`."""
    parts = urlsplit(url)
    message = EmailMessage()
    message["From"] = mail_from
    message["To"] = to
    message["Subject"] = subject
    message.set_content(text)
    secure = parts.scheme == "smtps"
    port = parts.port or (465 if secure else 25)
    host = parts.hostname or "localhost"
    smtp_class = smtplib.SMTP_SSL if secure else smtplib.SMTP
    try:
        with smtp_class(host, port, timeout=SMTP_TIMEOUT_SECONDS) as smtp:
            if not secure and parse_qs(parts.query).get("starttls", ["0"])[0] in ("1", "true"):
                smtp.starttls(context=ssl.create_default_context())
            if parts.username:
                smtp.login(unquote(parts.username), unquote(parts.password or ""))
            smtp.send_message(message)
    except (OSError, smtplib.SMTPException) as exc:
        raise MailError(f"{host}:{port}: {exc.__class__.__name__}: {first_line(exc)}") from None


def _console(to: str, subject: str, text: str) -> None:
    # One message, one log line (portal.logs): the body's line breaks become spaces, so a
    # link in it stands between spaces, ready to copy.
    _ensure_console_handler()
    log.info("mail to %s: %s | %s", to, subject, " ".join(text.split()))


def _ensure_console_handler() -> None:
    """Under gunicorn nothing configures our loggers: give the console channel a handler
    of its own (unless the host already routes it, as pytest does)."""
    if log.level == logging.NOTSET:
        log.setLevel(logging.INFO)
    if not log.hasHandlers():
        from portal.logs import console_handler

        log.addHandler(console_handler())
