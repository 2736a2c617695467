"""``loyalty-sdk``: check credentials and produce signed ``curl`` commands.

Reads ``LOYALTY_APP_ID``, ``LOYALTY_APP_SECRET``, ``LOYALTY_API_KEY`` and ``LOYALTY_BASE_URL``.

    loyalty-sdk whoami                     # app, mode, scopes and expiry of the key
    loyalty-sdk curl GET /v1/key           # a ready, signed curl command
    loyalty-sdk curl POST /v1/members --data '{"email": "ana@example.com"}'
    loyalty-sdk scan src/ config/.env      # API keys with a valid checksum, as file:line
    loyalty-sdk scan --report .            # … and have the platform revoke them at once

``scan`` needs no credentials (``--report`` only the base URL) and exits 1 when it finds a
key, so it works as a pre-commit hook.

The printed curl command refers to the key as ``$LOYALTY_API_KEY`` (the shell fills it in),
so the key never lands in shell history or a pasted bug report; the App Secret is never
printed (only the one-time signature made with it).

Exit status: 0 on success, 1 when the API refuses, 2 for a usage or configuration error,
141 when the reader of the output went away (``loyalty-sdk whoami | head -1``), as for
other Unix tools.
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
EXIT_BROKEN_PIPE = 141  # 128 + SIGPIPE: what a shell reports for a tool whose reader went away
# Expanded by the shell that runs the printed command (POSIX shells, zsh, fish).
AUTHORIZATION_FROM_ENV = '-H "Authorization: Bearer $LOYALTY_API_KEY"'


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
                    "for one use within 5 minutes: run it right away, in a shell where LOYALTY_API_KEY is "
                    "set (the command refers to $LOYALTY_API_KEY instead of printing the key).",
    )
    curl.add_argument("method", metavar="METHOD", type=str.upper, choices=METHODS, help="GET, POST, PATCH, …")
    curl.add_argument("path", metavar="PATH", help="the path with its query, e.g. /v1/members?limit=5")
    curl.add_argument("--data", metavar="JSON", help="the JSON body, sent exactly as given")
    curl.add_argument("--idempotency-key", metavar="KEY",
                      help="Idempotency-Key for a POST (default: a fresh one, so re-running is safe)")
    scan = commands.add_parser(
        "scan", help="find API keys in files (exit 1 if any); --report has them revoked",
        description="Find strings shaped like API keys with a valid checksum in files, recursing into "
                    "folders and skipping binary files; print file:line and the masked key. Exits 1 when it "
                    "finds any, 0 when none (usable as a pre-commit hook). --report sends them to the "
                    "platform's POST /v1/keys/revoke-exposed, which revokes each live one at once.",
    )
    scan.add_argument("paths", metavar="PATH", nargs="+", help="files or folders to scan")
    scan.add_argument("--report", action="store_true",
                      help="report the keys found to <base url>/v1/keys/revoke-exposed (no credentials needed)")
    scan.add_argument("--base-url", metavar="URL", help="the platform's address (default: $LOYALTY_BASE_URL)")
    scan.add_argument("--source", metavar="TEXT",
                      help="where the keys were found, as the key's owner will read it (default: the file:line list)")
    return parser


def scan_command(args) -> int:
    """Print each key found as file:line and masked; 1 when any was found."""
    from loyalty_sdk.scan import report_exposed, scan

    base_url = (args.base_url or os.environ.get("LOYALTY_BASE_URL", "")).strip()
    if args.report and not base_url.startswith(("http://", "https://")):
        return _fail("--report needs the platform's address: --base-url or LOYALTY_BASE_URL (https://…)", 2)
    try:
        findings = list(scan(args.paths))
    except FileNotFoundError as exc:
        return _fail(f"no such file or folder: {exc}", 2)
    for finding in findings:
        print(f"{finding.path}:{finding.line}: {finding.masked} ({finding.mode} API key)")
    if not findings:
        return 0
    keys = len({f.key for f in findings})
    print(f"loyalty-sdk: found {keys} API key{'' if keys == 1 else 's'}; never commit keys: load them from "
          "the environment (LOYALTY_API_KEY) instead", file=sys.stderr)
    if args.report:
        try:
            report_exposed(base_url, findings, source=args.source)
        except Exception as exc:  # requests' errors or an unexpected answer
            return _fail(f"could not report the keys: {exc}", 1)
        print(f"loyalty-sdk: reported to {base_url}: every live one of them is revoked now; create "
              "replacements in the portal", file=sys.stderr)
    return 1


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
    """A shell-quoted ``curl`` command with a fresh signature for this one request; the API
    key is left to the shell (``$LOYALTY_API_KEY``), and the App Secret is not in it."""
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
        if name == "Authorization":
            parts.append(AUTHORIZATION_FROM_ENV)
        else:
            parts.append("-H " + shlex.quote(f"{name}: {value}"))
    if body is not None:
        parts.append("--data-raw " + shlex.quote(data))  # type: ignore[arg-type]
    return " \\\n  ".join(parts)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``loyalty-sdk`` command."""
    try:
        try:
            return _run(argv)
        finally:
            sys.stdout.flush()  # so a closed pipe fails here, not in the interpreter's exit
    except BrokenPipeError:
        _stop_writing_to_stdout()
        return EXIT_BROKEN_PIPE


def _stop_writing_to_stdout() -> None:
    # The reader is gone: point stdout at /dev/null so nothing left in its buffer makes
    # Python print "Exception ignored … BrokenPipeError" on the way out.
    try:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    except (OSError, ValueError):
        pass


def _run(argv: Sequence[str] | None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "scan":
        return scan_command(args)
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
        print("# signed for one use within 5 minutes; the shell that runs it needs LOYALTY_API_KEY set",
              file=sys.stderr)
        return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
