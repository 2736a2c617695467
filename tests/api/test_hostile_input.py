"""Hostile input to the API gets its documented answer, on both engines (issue #9):

- text no database stores (NUL, unpaired surrogates) in any string, field name, query
  value, header or path → 400 `invalid_request` naming `param`, nothing written;
- query strings and paths whose escapes are not UTF-8 → 400 before the signature is
  checked, and the views read the very values the signature covers;
- a body past 64 KiB without Content-Length → 413, never cut and parsed;
- whatever a request holds, it writes exactly one log line.

The real server (gunicorn) is tried in tests/api/test_hostile_live.py.
"""

from __future__ import annotations

import io
import json
import logging
import time

import pytest
from werkzeug.test import EnvironBuilder, run_wsgi_app

from portal.models import IdempotencyRecord, LedgerEntry, Member
from tests.api.conftest import create_member
from tests.api.helpers import error_of, sign

UNSTORABLE = ["\ud800", "\udfff", "a\ud83d", "\udc00b", "a\x00b", "\x00"]


def body_with(field: str, value) -> bytes:
    """JSON with `value` in `field`, escaped as JSON does (\\ud800, \\u0000)."""
    return json.dumps({field: value}).encode()


def merged(base: dict, field: str, value) -> bytes:
    return json.dumps({**base, field: value}).encode()


def count(app, model) -> int:
    with app.app_context():
        return model.select().count()


def assert_invalid(response, param: str):
    error = error_of(response)
    assert response.status_code == 400, error
    assert (error["type"], error["code"], error["param"]) == ("invalid_request_error", "invalid_request", param)
    return error


# -- 1. text the databases cannot store -------------------------------------------------
# One app per test (a fresh database is the expensive part); each test tries many inputs.


def test_unstorable_text_in_a_new_member_is_refused_naming_the_field(app, api):
    for field in ("name", "email", "external_id", "phone"):
        base = {"email": "ana@example.com"} if field != "email" else {"phone": "+442079460958"}
        for value in UNSTORABLE:
            res = api.post("/v1/members", data=merged(base, field, value), content_type="application/json")
            assert_invalid(res, field)
    # Storable, but no address: control characters would reach the OTP console line.
    for email in ("a\x1b[2J@example.com", "a@exa\x7fmple.com", "a@example.co\x85m", "a\x0b@example.com"):
        assert_invalid(api.post("/v1/members", json={"email": email}), "email")
    assert count(app, Member) == 0


def test_unstorable_text_in_an_update_leaves_the_member_as_it_was(app, api):
    member = create_member(api, "ana@example.com", name="Ana", external_id="A-1")
    for field in ("name", "email", "external_id", "phone"):
        for value in UNSTORABLE:
            res = api.patch(f"/v1/members/{member['id']}", data=body_with(field, value),
                            content_type="application/json")
            assert_invalid(res, field)
    stored = api.get(f"/v1/members/{member['id']}").get_json()
    assert (stored["name"], stored["email"], stored["external_id"]) == ("Ana", "ana@example.com", "A-1")


# Every other string field of every POST body, with the fields it needs besides.
STRING_FIELDS = [
    ("/v1/members/{member}/stamps", {"card_id": "{card}", "count": 1}, "reference"),
    ("/v1/members/{member}/stamps", {"count": 1}, "card_id"),
    ("/v1/members/{member}/stamps/redeem", {"card_id": "{card}", "reward_id": "{reward}"}, "reference"),
    ("/v1/members/{member}/stamps/redeem", {"card_id": "{card}"}, "reward_id"),
    ("/v1/members/{member}/cashback/credit", {"amount": 5}, "description"),
    ("/v1/members/{member}/cashback/credit", {"amount": 5}, "reference"),
    ("/v1/members/{member}/cashback/redeem", {"amount": 5}, "description"),
    ("/v1/claims", {"member_id": "{member}", "amount": 5}, "note"),
    ("/v1/claims", {"member_id": "{member}", "amount": 5}, "reference"),
    ("/v1/claims", {"amount": 5}, "member_id"),
    ("/v1/claims", {"member_id": "{member}", "count": 1}, "card_id"),
    ("/v1/referrals/apply", {"member_id": "{member}"}, "code"),
    ("/v1/referrals/apply", {"code": "ABCDEFGH"}, "member_id"),
    ("/v1/members/{member}/otp/verify", {}, "code"),
]


def test_unstorable_text_in_any_string_field_is_refused_before_anything_is_written(app, api, member, program):
    ids = {"member": member, "card": program["card"], "reward": program["cookie"]}
    for path, base, field in STRING_FIELDS:
        body = {k: v.format(**ids) if isinstance(v, str) else v for k, v in base.items()}
        for value in UNSTORABLE:
            res = api.post(path.format(**ids), data=merged(body, field, value), content_type="application/json")
            assert_invalid(res, field)
    claim = api.post("/v1/claims", json={"member_id": member, "amount": 5}).get_json()["id"]
    for value in UNSTORABLE:
        assert_invalid(api.post(f"/v1/claims/{claim}/reject", data=body_with("reason", value),
                                content_type="application/json"), "reason")
    assert count(app, LedgerEntry) == 0
    assert api.get(f"/v1/claims/{claim}").get_json()["status"] == "pending"


def test_unstorable_text_in_field_names_and_nested_values_is_refused(app, api):
    for raw, param in [
        (b'{"\\ud800": 1}', "\\ud800"),
        (b'{"email": "a@b.co", "na\\u0000me": "x"}', "na\\x00me"),
        (b'{"email": "a@b.co", "name": ["\\ud800"]}', "name"),
        (b'{"email": "a@b.co", "name": {"\\udfff": "x"}}', "name"),
        (b'{"email": "a@b.co", "name": [[{"k": "\\u0000"}]]}', "name"),
    ]:
        assert_invalid(api.post("/v1/members", data=raw, content_type="application/json"), param)
    assert count(app, Member) == 0


def test_paired_surrogates_are_one_character_and_are_stored(api):
    res = api.post("/v1/members", data=b'{"email": "emoji@example.com", "name": "Ana \\ud83d\\ude00"}',
                   content_type="application/json")
    assert res.status_code == 201, res.get_json()
    assert api.get(f"/v1/members/{res.get_json()['id']}").get_json()["name"] == "Ana \U0001f600"


def test_unstorable_text_in_a_query_header_or_path_is_refused_before_any_lookup(app, api):
    for query, param in [("email=a%00b%40example.com", "email"), ("external_id=%00", "external_id"),
                         ("phone=%2B44%00", "phone"), ("starting_after=mem_%00", "starting_after"),
                         ("%00=1", "\\x00")]:
        assert_invalid(api.get(f"/v1/members?{query}"), param)
    assert_invalid(api.get("/v1/claims?member_id=mem_%00"), "member_id")
    assert_invalid(api.get("/v1/referrals/validate?code=%00"), "code")
    for path in ("/v1/members/%00", "/v1/members/mem_%00x/stamps", "/v1/cards/card_%00", "/v1/claims/%00",
                 "/v1/claims/clm_%00/approve"):
        assert_invalid(api.get(path) if "approve" not in path else api.post(path), "path")
    for key in ("a\x00b", "tab\there", "\x1b[2J", "line\x0bfeed", "x" * 256, ""):
        res = api.post("/v1/members", json={"email": "ana@example.com"}, headers={"Idempotency-Key": key})
        assert_invalid(res, "Idempotency-Key")
    assert (count(app, Member), count(app, IdempotencyRecord)) == (0, 0)


# -- 3. escapes that are not UTF-8 --------------------------------------------------------

NOT_UTF8_QUERIES = [
    ("code=%FF", "code"), ("code=%FE", "code"), ("code=AB%C3", "code"), ("code=%ED%A0%80", "code"),
    ("code=%C0%AF", "code"), ("code=%F4%90%80%80", "code"), ("%FF=1", "%FF"), ("code=x&member_id=%80", "member_id"),
]
NOT_UTF8_PATHS = ["/v1/members/mem_\xff", "/v1/members/\xfe/stamps", "/v1/claims/\xc3", "/v1/\xed\xa0\x80",
                  "/v1/cards/\xc0\xaf"]


def test_escapes_that_are_not_utf8_are_refused_before_the_signature_is_checked(client, api, creds):
    # No signature can be made for them (the SDK refuses), so send a well-formed wrong one.
    signature = {"X-Loyalty-Timestamp": str(int(time.time())), "X-Loyalty-Nonce": "n" * 24,
                 "X-Loyalty-Signature": "v1=" + "0" * 64}
    for query, param in NOT_UTF8_QUERIES:
        path = f"/v1/referrals/validate?{query}"
        signed = api.get(path, sign_request=False, headers=signature)
        unsigned = api.get(path, sign_request=False, headers={"Authorization": None, "X-Loyalty-App-Id": None})
        for res in (signed, unsigned):
            assert "UTF-8" in assert_invalid(res, param)["message"], query
    # Raw bytes: WSGI hands the query over as latin-1 text (the test client cannot send them
    # otherwise; tests/api/test_hostile_live.py sends them over a socket).
    for raw in ("code=\xff\xfe", "code=\xc3"):
        res = client.get("/v1/referrals/validate", environ_overrides={"QUERY_STRING": raw},
                         headers={"Authorization": f"Bearer {creds.api_key}"})
        assert_invalid(res, "code")
    # PATH_INFO is the percent-decoded path's bytes as latin-1 text, as a WSGI server hands
    # it over (werkzeug's test client would decode `%FF` to U+FFFD first).
    signed = {"Authorization": f"Bearer {creds.api_key}",
              **sign("GET", "/v1/members/mem_x", b"", app_id=creds.app_id, app_secret=creds.app_secret)}
    for path_info in NOT_UTF8_PATHS:
        for headers in (signed, {}):
            res = client.get("/v1/members/mem_x", headers=headers, environ_overrides={"PATH_INFO": path_info})
            assert "UTF-8" in assert_invalid(res, "path")["message"], path_info


def test_a_signature_never_covers_a_swapped_byte_and_views_read_what_was_signed(client, api, creds, member):
    """The attack was: sign a request whose query the server read as U+FFFD (`%FF`, `%FE`
    and `%EF%BF%BD` all canonicalised to `code=%EF%BF%BD`), then send `%FF` or `%FE` under
    that signature, which the view read as different strings. Now a lone byte is refused,
    and `%25FF` (the three characters `%FF`) is signed and read as such."""
    headers = {"Authorization": f"Bearer {creds.api_key}"}
    headers.update(sign("GET", "/v1/referrals/validate?code=%EF%BF%BD", b"", app_id=creds.app_id,
                        app_secret=creds.app_secret))
    for sent in ("/v1/referrals/validate?code=%FF", "/v1/referrals/validate?code=%FE"):
        assert_invalid(client.get(sent, headers=headers), "code")
    code = api.get(f"/v1/members/{member}").get_json()["referral_code"]
    literal = api.get("/v1/referrals/validate?code=%25FF")
    assert literal.status_code == 200 and literal.get_json()["valid"] is False
    spelled = api.get(f"/v1/referrals/validate?code={code[:4]}%{ord(code[4]):02X}{code[5:]}")
    assert spelled.status_code == 200 and spelled.get_json()["valid"] is True


# -- 2. bodies past the limit, however they are framed ----------------------------------


def _post_stream(app, creds, body: bytes, signed_part: bytes) -> tuple[int, dict]:
    """POST `body` without Content-Length from a stream the server marks terminated (what
    gunicorn hands over for a chunked body), signed over `signed_part`. Straight into the
    WSGI app: the test client would measure the stream and add a Content-Length."""
    headers = {"Authorization": f"Bearer {creds.api_key}", "Content-Type": "application/json"}
    headers.update(sign("POST", "/v1/members", signed_part, app_id=creds.app_id, app_secret=creds.app_secret))
    environ = EnvironBuilder(path="/v1/members", method="POST", headers=headers).get_environ()
    environ.pop("CONTENT_LENGTH", None)
    environ.update({"wsgi.input": io.BytesIO(body), "wsgi.input_terminated": True})
    app_iter, status, _ = run_wsgi_app(app, environ, buffered=True)
    return int(status.split()[0]), json.loads(b"".join(app_iter))


def _padded(email: str, size: int) -> bytes:
    head = json.dumps({"email": email}).encode()
    return head + b" " * (size - len(head))


def test_a_body_without_content_length_past_64_kib_is_413_and_never_cut(app, creds):
    for size in (64 * 1024 + 1, 70 * 1024, 1024 * 1024):
        body = _padded(f"cut{size}@example.com", size)
        status, answer = _post_stream(app, creds, body, signed_part=body[:64 * 1024])  # what a cut would read
        assert (status, answer["error"]["code"]) == (413, "request_too_large"), (size, answer)
    assert count(app, Member) == 0
    for size in (100, 64 * 1024):
        body = _padded(f"whole{size}@example.com", size)
        assert _post_stream(app, creds, body, signed_part=body)[0] == 201, size
    assert count(app, Member) == 2


# -- 4. one request, one log line ------------------------------------------------------


FORGED = "2026-01-01 00:00:00,000 INFO portal.api: api req_forged POST /v1/members/mem_1/cashback/redeem 201 1.0ms"
LINE_BREAKERS = "\n\r\x0b\x0c\x1b\x85\u2028\u2029"


@pytest.mark.sqlite_only  # how a body is read, not the database
def test_a_get_with_a_body_is_refused_however_the_body_is_framed(app, creds, member):
    """A GET has no body to read unless one is framed; one that is (Content-Length, or
    chunked without it) is read and refused, never ignored."""
    path = f"/v1/members/{member}"
    body = json.dumps({"email": "sneaky@example.com"}).encode()

    def get(framing: str) -> tuple[int, dict]:
        sent = b"" if framing == "none" else body
        headers = {"Authorization": f"Bearer {creds.api_key}", "Content-Type": "application/json",
                   **sign("GET", path, sent, app_id=creds.app_id, app_secret=creds.app_secret)}
        if framing == "chunked":
            headers["Transfer-Encoding"] = "chunked"
        environ = EnvironBuilder(path=path, method="GET", headers=headers).get_environ()
        environ.update({"wsgi.input": io.BytesIO(sent), "wsgi.input_terminated": True})
        if framing == "length":
            environ["CONTENT_LENGTH"] = str(len(sent))
        else:
            environ.pop("CONTENT_LENGTH", None)
        app_iter, status, _ = run_wsgi_app(app, environ, buffered=True)
        return int(status.split()[0]), json.loads(b"".join(app_iter))

    assert get("none")[0] == 200
    for framing in ("length", "chunked"):
        status, answer = get(framing)
        assert (status, answer["error"]["code"], answer["error"]["param"]) == (400, "invalid_request", "email"), framing


def test_a_path_or_a_presented_key_cannot_write_a_second_log_line(api, caplog):
    separators = ["%0A", "%0D", "%0D%0A", "%E2%80%A8", "%C2%85", "%1B[2K%0D", "%0B", "%0C"]
    with caplog.at_level(logging.INFO, logger="portal.api"):
        for separator in separators:
            api.get(f"/v1/x{separator}{FORGED.replace(' ', '%20')}")
            api.get(f"/v1/members/mem_x{separator}{FORGED.replace(' ', '%20')}")
        api.get("/v1/key", headers={"Authorization": "Bearer test_sk_\x0b\x1b[2K" + "x" * 20 + "\x0c\x1b"})
    lines = [record.getMessage() for record in caplog.records if record.name == "portal.api"]
    assert len(lines) == 2 * len(separators) + 1
    for line in lines[:-1]:
        assert line.startswith("api req_") and FORGED in line
    assert " 401 " in lines[-1] and "\\x0b" in lines[-1]
    assert not any(ch in line for line in lines for ch in LINE_BREAKERS)
