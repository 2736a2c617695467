"""``loyalty-sdk``: check credentials and produce signed ``curl`` commands.

Reads ``LOYALTY_APP_ID``, ``LOYALTY_APP_SECRET``, ``LOYALTY_API_KEY`` and ``LOYALTY_BASE_URL``.

    loyalty-sdk whoami                     # app, mode, scopes and expiry of the key
    loyalty-sdk curl GET /v1/key           # a ready, signed curl command
    loyalty-sdk curl POST /v1/members --data '{"email": "ana@example.com"}'

Exit status: 0 on success, 1 when the API refuses, 2 for a usage or configuration error.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import sys
from typing import Sequence

from requests.utils import requote_uri

from loyalty_sdk._version import __version__
from loyalty_sdk.client import LoyaltyClient
from loyalty_sdk.errors import ConfigurationError, LoyaltyError

METHODS = ("GET", "POST", "PATCH", "PUT", "DELETE")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="loyalty-sdk",
        description="Loyalty API SDK tools. Credentials come from LOYALTY_APP_ID, LOYALTY_APP_SECRET, "
                    "LOYALTY_API_KEY and LOYALTY_BASE_URL.",
    )
    parser.add_argument("--version", action="version", version=f"loyalty-sdk {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    commands.required = True

    whoami = commands.add_parser("whoami", help="show the API key's application, mode, scopes and expiry",
                                 description="Call GET /v1/key and show what the configured key is.")
    whoami.add_argument("--json", action="store_true", help="print the key info as JSON")

    curl = commands.add_parser(
        "curl", help="print a ready, signed curl command for one request",
        description="Print a curl command signed for METHOD PATH (and its body). The signature holds "
                    "for one use within 5 minutes: run it right away.",
    )
    curl.add_argument("method", metavar="METHOD", type=str.upper, choices=METHODS, help="GET, POST, PATCH, …")
    curl.add_argument("path", metavar="PATH", help="the path with its query, e.g. /v1/members?limit=5")
    curl.add_argument("--data", metavar="JSON", help="the JSON body, sent exactly as given")
    curl.add_argument("--idempotency-key", metavar="KEY",
                      help="Idempotency-Key for a POST (default: a fresh one, so re-running is safe)")
    return parser


def _fail(message: str, status: int) -> int:
    print(f"loyalty-sdk: {message}", file=sys.stderr)
    return status


def whoami(client: LoyaltyClient, as_json: bool) -> int:
    """Print the calling key's application, mode, name, scopes and expiry."""
    info = client.key_info()
    if as_json:
        print(json.dumps(info.raw, indent=2))
        return 0
    rows = [
        ("app", info.app_id),
        ("mode", info.mode),
        ("key name", info.name),
        ("scopes", ", ".join(info.scopes or ()) or "(none)"),
        ("expires", info.expires_at or "never"),
        ("server", client.base_url),
    ]
    for label, value in rows:
        print(f"{label:<9} {value}")
    return 0


def curl_command(client: LoyaltyClient, method: str, path: str, data: str | None,
                 idempotency_key: str | None = None) -> str:
    """A shell-quoted ``curl`` command carrying the API key and a fresh signature for this one request."""
    if not path.startswith("/"):
        path = "/" + path
    url = requote_uri(client.base_url + path)  # escaped the way an HTTP client sends it, then signed as such
    body = data.encode("utf-8") if data is not None else None
    headers = client.auth.signed_headers(method, url, body)
    if body is not None:
        headers["Content-Type"] = "application/json"
    if method == "POST":
        headers["Idempotency-Key"] = idempotency_key or "cli_" + os.urandom(16).hex()
    parts = [f"curl -sS --globoff -X {method} {shlex.quote(url)}"]
    for name, value in headers.items():
        parts.append("-H " + shlex.quote(f"{name}: {value}"))
    if body is not None:
        parts.append("--data-raw " + shlex.quote(data))  # type: ignore[arg-type]
    return " \\\n  ".join(parts)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``loyalty-sdk`` command."""
    args = _parser().parse_args(argv)
    try:
        client = LoyaltyClient.from_env(max_retries=0 if args.command == "curl" else 2)
    except ConfigurationError as exc:
        return _fail(str(exc), 2)
    with client:
        if args.command == "whoami":
            try:
                return whoami(client, args.json)
            except LoyaltyError as exc:
                return _fail(str(exc), 1)
        if args.data is not None:
            try:
                parsed = json.loads(args.data)
            except ValueError as exc:
                return _fail(f"--data is not valid JSON: {exc}", 2)
            if not isinstance(parsed, dict):
                return _fail("--data must be a JSON object, e.g. '{\"email\": \"ana@example.com\"}'", 2)
        print(curl_command(client, args.method, args.path, args.data, args.idempotency_key))
        print("# signed for one use within 5 minutes", file=sys.stderr)
        return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
