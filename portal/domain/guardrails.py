"""Key guardrails (DESIGN.md §13): allowed IPs, per-key rate limits, exposed keys and
expiry reminders.

- `parse_allowed_ips` checks what a partner typed into "Allowed IPs" (one address or CIDR
  range per line) and normalises it; `networks_of` turns the stored text into networks,
  cached by text so the gate parses each key's list once per process.
- `rate_limit_of` is a key's requests per minute: its own lower value or its mode's
  default (`LOYALTY_RATE_LIMIT_TEST` / `LOYALTY_RATE_LIMIT_PROD`).
- `update_guardrails` changes a key's allowed IPs and limit later, with an audit entry.
- `revoke_exposed` revokes keys someone reported as leaked (POST /v1/keys/revoke-exposed).
- `send_expiry_reminders` is the periodic job behind `api_key.expiring` and the reminder
  email: the webhook delivery worker runs it every 10 minutes (portal.webhooks_worker), and
  `loyalty-portal remind-expiring` once (cron, where no worker runs).
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from datetime import timedelta
from functools import lru_cache

from portal.config import current_settings
from portal.credentials import MalformedApiKey, hash_api_key, parse_api_key
from portal.db import write_transaction
from portal.domain import Invalid, audit
from portal.domain.applications import api_key_json
from portal.domain.events import emit
from portal.inputs import whole_number
from portal.logs import get_logger
from portal.models import ApiKey, Application, User, utcnow

log = get_logger("portal.domain.guardrails")

MAX_ALLOWED_IPS = 50
EXPOSED_SOURCE_MAX = 500
EXPOSED_KEYS_MAX = 100
REMIND_BEFORE = timedelta(days=7)
ANYWHERE = ("0.0.0.0/0", "::/0")



# -- allowed IPs --------------------------------------------------------------------------


@dataclass(frozen=True)
class AllowedIps:
    """What "Allowed IPs" holds once checked: the normalised lines and a note to show."""

    text: str  # one network per line, normalised ("" = anywhere)
    note: str | None = None  # e.g. that 0.0.0.0/0 means anywhere


def parse_allowed_ips(raw: str) -> AllowedIps:
    """Check and normalise "Allowed IPs": IPv4/IPv6 addresses or CIDR ranges, one per line
    (commas and spaces separate too). Invalid names the first bad line."""
    entries = (raw or "").replace(",", "\n").split()
    if len(entries) > MAX_ALLOWED_IPS:
        raise Invalid(f"Enter at most {MAX_ALLOWED_IPS} addresses or ranges.", field="allowed_ips")
    networks: list[str] = []
    for entry in entries:
        try:
            network = ipaddress.ip_network(entry, strict=False)
        except ValueError:
            shown = "".join(ch if ch.isprintable() else "?" for ch in entry[:60])
            shown = shown if len(entry) <= 60 else shown[:57] + "…"
            raise Invalid(f"“{shown}” is not an IP address or CIDR range (e.g. 203.0.113.7, 203.0.113.0/24 "
                          "or 2001:db8::/32).", field="allowed_ips") from None
        if isinstance(network, ipaddress.IPv6Network) and network.network_address.ipv4_mapped and network.prefixlen >= 96:
            network = ipaddress.ip_network(f"{network.network_address.ipv4_mapped}/{network.prefixlen - 96}")
        text = str(network.network_address) if network.num_addresses == 1 else str(network)
        if text not in networks:
            networks.append(text)
    note = None
    everywhere = [n for n in networks if n in ANYWHERE]
    if everywhere:
        note = (f"{' and '.join(everywhere)} {'means' if len(everywhere) == 1 else 'mean'} anywhere"
                f"{' (for IPv4)' if everywhere == ['0.0.0.0/0'] else ' (for IPv6)' if everywhere == ['::/0'] else ''}: "
                "the key is not restricted by it.")
    return AllowedIps("\n".join(networks), note)


@lru_cache(maxsize=8192)
def networks_of(text: str) -> tuple:
    """The stored allowed-IPs text as networks (empty: anywhere), parsed once per text."""
    return tuple(ipaddress.ip_network(line, strict=False) for line in text.split())


@lru_cache(maxsize=8192)
def ip_allowed(text: str, address: str) -> bool:
    """Is `address` (the caller's, after the trusted proxies) inside the allowed list?
    (Asked on every API call to a key with a list: the answer is kept per list and address.)"""
    networks = networks_of(text)
    if not networks:
        return True
    try:
        ip = ipaddress.ip_address((address or "").split("%", 1)[0])
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped:
        ip = ip.ipv4_mapped
    return any(ip.version == net.version and ip in net for net in networks)


# -- rate limits --------------------------------------------------------------------------


def default_rate_limit(mode: str) -> int:
    settings = current_settings()
    return settings.rate_limit_prod if mode == "prod" else settings.rate_limit_test


def rate_limit_of(key: ApiKey) -> int:
    """The key's requests per minute: its own lower value, else its mode's default."""
    default = default_rate_limit(key.mode)
    return min(key.rate_limit, default) if key.rate_limit else default


def parse_rate_limit(raw, mode: str) -> int | None:
    """Check "Requests per minute": empty means the mode's default (None); otherwise a
    whole number from 1 up to that default."""
    text = str(raw if raw is not None else "").strip()
    if not text:
        return None
    default = default_rate_limit(mode)
    value = whole_number(text)
    if value is None:
        if text.startswith("-") and whole_number(text[1:]) is not None:
            raise Invalid("Requests per minute must be at least 1.", field="rate_limit")
        raise Invalid(f"Enter a whole number of requests per minute, at most {default}, or leave it empty.",
                      field="rate_limit")
    if value < 1:
        raise Invalid("Requests per minute must be at least 1 (revoke the key to stop it altogether).",
                      field="rate_limit")
    if value > default:
        raise Invalid(f"At most {default} requests per minute for a {'production' if mode == 'prod' else 'test'} "
                      "key (the platform's limit); leave it empty for that.", field="rate_limit")
    return None if value == default else value


def update_guardrails(key: ApiKey, *, allowed_ips: str, rate_limit: int | None, by=None) -> ApiKey:
    """Set a key's allowed IPs (normalised text) and rate limit (None: default), audited.
    Takes effect on the key's next request."""
    with write_transaction():
        ApiKey.update(allowed_ips=allowed_ips, rate_limit=rate_limit).where(ApiKey.id == key.id).execute()
        limit = f"{rate_limit}/min" if rate_limit else "default limit"
        ips = ", ".join(allowed_ips.split()) or "anywhere"
        audit.record("key.guardrails_changed", partner=key.application.partner_id, user=by, target=key.masked,
                     detail=f"allowed IPs: {ips}; {limit}"[:2000])
    return ApiKey.get_by_id(key.id)


# -- exposed keys -------------------------------------------------------------------------


def key_metadata(key: ApiKey) -> dict:
    """The key as the guardrails' webhook events describe it: `api_key_json`'s shape plus
    where it was found when exposed; never the key itself."""
    return {**api_key_json(key, key.application.app_id), "exposed_source": key.exposed_source}


def revoke_exposed(keys: list[str], source: str) -> int:
    """Revoke, at once, every well-formed live key among `keys` (reported as leaked at
    `source`) and mark it exposed; returns how many were revoked (the caller does not tell
    the reporter). Malformed, unknown, already revoked and expired keys change nothing."""
    pepper = current_settings().key_pepper
    hashes = []
    for text in keys:
        try:
            parse_api_key(text)
        except MalformedApiKey:
            continue
        hashes.append(hash_api_key(text, pepper))
    if not hashes:
        return 0
    now = utcnow()
    revoked = 0
    with write_transaction():
        for key_hash in dict.fromkeys(hashes):
            key = (ApiKey.select(ApiKey, Application).join(Application)
                   .where(ApiKey.key_hash == key_hash).first())
            if key is None or not key.is_live_at(now):
                continue
            changed = ApiKey.update(revoked_at=now, exposed_at=now, exposed_source=source).where(
                (ApiKey.id == key.id) & ApiKey.revoked_at.is_null()).execute()
            if not changed:
                continue
            revoked += 1
            key.revoked_at, key.exposed_at, key.exposed_source = now, now, source
            audit.record("key.exposed", partner=key.application.partner_id, actor="anonymous",
                         target=key.masked, detail=f"{key.mode} {key.name}: reported exposed at {source}"[:2000])
            emit(key.application, key.mode, "api_key.exposed", key_metadata(key))
    if revoked:
        log.warning("revoked %d exposed API key(s) reported at %s", revoked, source[:200])
    return revoked


EXPOSED_BANNER_DAYS = 30


def recently_exposed(partner, application=None) -> list[ApiKey]:
    """Keys of the partner (or of one application) reported exposed in the last 30 days."""
    query = (ApiKey.select(ApiKey, Application).join(Application)
             .where((Application.partner == partner) & ApiKey.exposed_at.is_null(False)
                    & (ApiKey.exposed_at > utcnow() - timedelta(days=EXPOSED_BANNER_DAYS))))
    if application is not None:
        query = query.where(ApiKey.application == application)
    return list(query.order_by(ApiKey.exposed_at.desc()))


# -- expiry reminders ---------------------------------------------------------------------


def expiring_soon(partner, application=None, now=None) -> list[ApiKey]:
    """Live keys of the partner (or one application) that expire within 7 days."""
    now = now or utcnow()
    query = (ApiKey.select(ApiKey, Application).join(Application)
             .where((Application.partner == partner) & ApiKey.revoked_at.is_null()
                    & ApiKey.expires_at.is_null(False) & (ApiKey.expires_at > now)
                    & (ApiKey.expires_at <= now + REMIND_BEFORE)))
    if application is not None:
        query = query.where(ApiKey.application == application)
    return list(query.order_by(ApiKey.expires_at))


def days_left(key: ApiKey, now=None) -> int:
    """Whole days until the key expires, rounded up (a key expiring in 3 h: 1 day)."""
    seconds = (key.expires_at - (now or utcnow())).total_seconds()
    return max(1, int(-(-seconds // 86400)))


def send_expiry_reminders(now=None) -> int:
    """The periodic job: for each live key that expires within 7 days and was not reminded
    yet, mark it reminded, emit `api_key.expiring` (same transaction) and email the
    partner's owners and admins when mail is configured. Each key is reminded once, also
    with several processes running this job (the conditional UPDATE claims it)."""
    from portal.mail import MailError, mail_configured, send_mail

    now = now or utcnow()
    due = list(ApiKey.select(ApiKey, Application).join(Application)
               .where(ApiKey.revoked_at.is_null() & ApiKey.expiry_reminded_at.is_null()
                      & ApiKey.expires_at.is_null(False) & (ApiKey.expires_at > now)
                      & (ApiKey.expires_at <= now + REMIND_BEFORE)))
    reminded = 0
    for key in due:
        with write_transaction():
            claimed = ApiKey.update(expiry_reminded_at=now).where(
                (ApiKey.id == key.id) & ApiKey.expiry_reminded_at.is_null()).execute()
            if not claimed:
                continue
            emit(key.application, key.mode, "api_key.expiring", key_metadata(key))
        reminded += 1
        if not mail_configured():
            continue
        recipients = [u.email for u in User.select(User.email).where(
            (User.partner == key.application.partner_id) & User.role.in_(("owner", "admin")))]
        days = days_left(key, now)
        text = (f"The API key “{key.name}” ({key.masked}) of the application “{key.application.name}” "
                f"({key.application.app_id}) expires in {days} day{'' if days == 1 else 's'}, on "
                f"{key.expires_at:%Y-%m-%d %H:%M} UTC.\n\nRoll it in the portal (Developer → the application → "
                "API keys → Roll) and deploy the new key before then; calls made with the old key are refused "
                "once it has expired.\n")
        for to in recipients:
            try:
                send_mail(to, f"API key “{key.name}” expires in {days} day{'' if days == 1 else 's'}", text)
            except MailError as exc:
                log.error("expiry reminder to %s failed: %s", to, exc)
    return reminded
