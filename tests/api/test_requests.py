"""Strict JSON and query strings, the one error shape, request ids, no leaks (DESIGN.md §5)."""

from __future__ import annotations

import logging

import pytest

from tests.api.helpers import error_of

pytestmark = pytest.mark.sqlite_only  # request parsing and the error shape: no SQL behaviour


def invalid(response, param=None, status=400, code="invalid_request"):
    assert response.status_code == status, response.get_data(as_text=True)
    error = error_of(response)
    assert error["code"] == code
    assert error["type"] == "invalid_request_error"
    if param is not None:
        assert error["param"] == param
    return error


def test_body_that_is_not_json_is_415(api):
    invalid(api.post("/v1/members", data="email=a@b.c", content_type="application/x-www-form-urlencoded"),
            status=415, code="unsupported_media_type")
    invalid(api.post("/v1/members", data='{"email":"a@b.c"}'), status=415, code="unsupported_media_type")


def test_body_past_64_kib_is_413(api):
    big = '{"name":"' + "x" * (64 * 1024) + '"}'
    invalid(api.post("/v1/members", data=big, content_type="application/json"), status=413, code="request_too_large")


def test_unknown_field_is_refused_naming_it(api):
    invalid(api.post("/v1/members", json={"email": "a@example.com", "nickname": "A"}), "nickname")


@pytest.mark.parametrize("body, param", [
    ({"email": 42}, "email"),
    ({"email": "a@example.com", "name": ["A"]}, "name"),
    ({"email": True}, "email"),
    ({"email": "a@example.com", "name": None}, "name"),
])
def test_wrong_type_is_refused_naming_the_field(api, body, param):
    invalid(api.post("/v1/members", json=body), param)


def test_missing_required_field_is_refused_naming_it(api):
    member = api.post("/v1/members", json={"email": "otp@example.com"}).get_json()
    invalid(api.post(f"/v1/members/{member['id']}/otp", json={}), "channel")
    invalid(api.post("/v1/members", json={"name": "Nobody"}), "email")


@pytest.mark.parametrize("raw", [b"{", b"[]", b'"text"', b'{"email": NaN}', b'{"email":"a@b.c","email":"d@e.f"}',
                                 b"\xff\xfe"])
def test_malformed_json_is_invalid_request(api, raw):
    invalid(api.post("/v1/members", data=raw, content_type="application/json"))


def test_json_with_a_charset_is_accepted(api):
    response = api.post("/v1/members", data='{"email":"cs@example.com"}', content_type="application/json; charset=utf-8")
    assert response.status_code == 201


@pytest.mark.parametrize("query, param", [
    ("limit=0", "limit"), ("limit=101", "limit"), ("limit=ten", "limit"), ("limit=1&limit=2", "limit"),
    ("colour=red", "colour"), ("starting_after=mem_nope", "starting_after"),
])
def test_bad_query_parameters_are_refused_naming_them(api, query, param):
    invalid(api.get(f"/v1/members?{query}"), param)


def test_errors_share_one_shape_and_carry_the_request_id(api):
    for response in (api.get("/v1/nowhere"), api.request("DELETE", "/v1/members"),
                     api.get("/v1/members/mem_missing"), api.get("/v1/key", headers={"Authorization": None})):
        error = error_of(response)
        assert set(error) >= {"type", "code", "message", "request_id"}
        assert response.headers["X-Request-Id"] == error["request_id"]
        assert response.mimetype == "application/json"


def test_unknown_path_is_404_and_wrong_method_405_as_json(api):
    assert api.get("/v1/nowhere").status_code == 404
    response = api.request("PUT", "/v1/members")
    assert response.status_code == 405
    assert error_of(response)["code"] == "method_not_allowed"
    assert "POST" in response.headers["Allow"]


def test_every_response_has_a_request_id(client, api):
    assert api.get("/v1/key").headers["X-Request-Id"].startswith("req_")
    assert client.get("/v1/openapi.json").headers["X-Request-Id"].startswith("req_")


@pytest.mark.sqlite_only  # needs a value PostgreSQL's typed columns would refuse
def test_server_error_is_500_api_error_without_sql_or_traceback(app, api, caplog):
    """A bug (here: a corrupt stored time the serializer chokes on) is a bare 500."""
    from portal.db import database

    api.post("/v1/members", json={"email": "corrupt@example.com"})
    with app.app_context():
        database.connect(reuse_if_open=True)
        database.execute_sql("UPDATE member SET created_at = 'not a time at all'")
        database.close()
    with caplog.at_level(logging.INFO, logger="portal.api"):
        response = api.get("/v1/members")
    assert response.status_code == 500
    error = error_of(response)
    assert (error["type"], error["code"]) == ("api_error", "internal_error")
    text = response.get_data(as_text=True).lower()
    for leak in ("select", "not a time", "traceback", "sqlite", "attributeerror", "typeerror", "corrupt@"):
        assert leak not in text
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert error["request_id"] in logged
    assert "Traceback" not in caplog.text and "SELECT" not in logged


def test_log_line_per_request_masks_the_key_and_never_holds_the_secret(api, caplog):
    with caplog.at_level(logging.INFO, logger="portal.api"):
        response = api.get("/v1/key")
    lines = [r.getMessage() for r in caplog.records if r.name == "portal.api"]
    rid = response.headers["X-Request-Id"]
    line = next(line for line in lines if rid in line)
    key = api.creds.api_key
    assert f"{key[:12]}…{key[-4:]}" in line
    assert " 200 " in line and "ms" in line
    assert key not in caplog.text and api.creds.app_secret not in caplog.text


def test_an_id_that_decodes_to_a_slash_is_a_json_404_not_a_redirect(api):
    for path in ("/v1/members/%2F0", "/v1/members//0", "/v1/claims/%2F%2Fx"):
        response = api.get(path)
        assert response.status_code == 404, path
        assert response.get_json()["error"]["type"] == "not_found"
