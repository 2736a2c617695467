"""One event is one log line (portal.logs): values a request controls are escaped, so a
path with %0A, a header or a name can never write a second, made-up line."""

from __future__ import annotations

import logging
import re
from pathlib import Path

import pytest

from portal.logs import escape_for_log, get_logger

PORTAL = Path(__file__).resolve().parent.parent / "portal"


@pytest.mark.parametrize(("value", "written"), [
    ("a\nb", "a\\nb"), ("a\r\nb", "a\\r\\nb"), ("\tx", "\\tx"), ("\x00", "\\x00"), ("\x1b[31m", "\\x1b[31m"),
    ("\x85", "\\x85"), ("a\u2028b", "a\\u2028b"), ("\u2029", "\\u2029"), ("\u202e", "\\u202e"),
    ("\ud800", "\\ud800"), ("back\\slash", "back\\\\slash"), ("\\n", "\\\\n"), ("plain é 😀", "plain é 😀"),
])
def test_control_characters_are_written_as_escapes(value, written):
    assert escape_for_log(value) == written


def test_a_logged_request_value_stays_on_one_line(caplog):
    log = get_logger("portal.test_logs")
    forged = "/v1/x\n2026-01-01 00:00:00,000 INFO portal.api: api req_x POST /v1/members/mem_1/cashback/redeem 201"
    with caplog.at_level(logging.INFO, logger="portal.test_logs"):
        log.info("api %s %s %d %.1fms", "GET", forged, 404, 1.25)
        log.info("%(path)s", {"path": "a\rb"})
        name = "a\x0bb"
        log.info(f"an f-string with {name}")
    lines = [record.getMessage() for record in caplog.records]
    assert lines[0] == ("api GET /v1/x\\n2026-01-01 00:00:00,000 INFO portal.api: api req_x POST "
                        "/v1/members/mem_1/cashback/redeem 201 404 1.2ms")
    assert lines[1:] == ["a\\rb", "an f-string with a\\x0bb"]
    assert all("\n" not in line and "\r" not in line for line in caplog.text.splitlines(keepends=False))


def test_each_argument_is_escaped_wherever_it_stands_among_clean_ones(caplog):
    """Clean arguments pass as they are (numbers stay numbers); one unsafe character in any
    argument, or an object whose text holds one, gets that argument escaped."""
    log = get_logger("portal.test_logs")

    class Shown:
        def __str__(self):
            return "obj\nline"

    cases = [(("a", "b", 3, 1.5, None, True), "a b 3 1.5 None True"),
             (("clean", "x\u2028y", 7, 0.25, None, False), "clean x\\u2028y 7 0.25 None False"),
             (("\ud800", "ok", 0, 2.0, None, True), "\\ud800 ok 0 2.0 None True"),
             (("ok", "back\\slash", 1, 1.0, None, True), "ok back\\\\slash 1 1.0 None True"),
             ((Shown(), "ok", 2, 3.5, None, True), "obj\\nline ok 2 3.5 None True")]
    with caplog.at_level(logging.INFO, logger="portal.test_logs"):
        for args, _ in cases:
            log.info("%s %s %d %s %s %s", *args)
    assert [record.getMessage() for record in caplog.records] == [written for _, written in cases]


def test_line_times_are_utc_to_the_millisecond_across_seconds():
    from portal.logs import LineFormatter

    formatter = LineFormatter()
    times = []
    for second, msecs in ((1_796_299_445, 1), (1_796_299_445, 999), (1_796_299_446, 500), (1_796_299_445, 250)):
        record = logging.LogRecord("portal.test_logs", logging.INFO, __file__, 1, "m", None, None)
        record.created, record.msecs = second + msecs / 1000, msecs
        times.append(formatter.format(record).split(" ", 1)[0])
    assert times == ["2026-12-03T12:04:05.001Z", "2026-12-03T12:04:05.999Z", "2026-12-03T12:04:06.500Z",
                     "2026-12-03T12:04:05.250Z"]


def test_every_platform_logger_comes_from_get_logger():
    """A logger's filters apply only to its own records, so one made with logging.getLogger
    would log request values unescaped. (Setting another library's level is fine.)"""
    offenders = []
    for path in PORTAL.rglob("*.py"):
        if path.name == "logs.py" and path.parent == PORTAL:
            continue
        for number, line in enumerate(path.read_text().splitlines(), 1):
            for match in re.finditer(r"logging\.getLogger\(([^)]*)\)(\.\w+)?", line):
                if match.group(2) != ".setLevel":
                    offenders.append(f"{path.relative_to(PORTAL.parent)}:{number}")
    assert offenders == []


def test_request_lines_name_the_client_behind_a_trusted_proxy(tmp_path, database_url, caplog):
    from portal import create_app, db

    app = create_app({"DATA_DIR": str(tmp_path), "DATABASE_URL": database_url, "TRUSTED_PROXIES": "1"})
    client = app.test_client()
    proxied = {"X-Forwarded-For": "203.0.113.9"}
    try:
        with caplog.at_level(logging.INFO, logger="portal"):
            client.get("/login", headers=proxied)
            client.get("/v1/key", headers=proxied)
            client.get("/healthz", headers=proxied)
    finally:
        db.close_all()
    lines = [r.getMessage() for r in caplog.records if r.name in ("portal.web", "portal.api")]
    assert re.fullmatch(r"portal GET /login 200 [\d.]+ms client=203\.0\.113\.9 user=-", lines[0]), lines
    assert re.fullmatch(r"api req_\w{24} GET /v1/key 401 [\d.]+ms key=- client=203\.0\.113\.9", lines[1]), lines
    assert len(lines) == 2  # probes have no line
