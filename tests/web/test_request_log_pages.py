"""The request log pages (DESIGN.md §11): an application's requests newest first, filters
over htmx and as a plain GET form, "Older" paging, the Request ID lookup, a request's page
with "Compare" for invalid_signature, the usage chart and counters; viewers read it all
and see nothing that changes anything; another partner's requests are 404."""

from __future__ import annotations

import re
from datetime import timedelta
from html import escape

from portal_helpers import teammate

from portal.domain import request_log
from portal.models import Application, utcnow
from tests.api.helpers import Credentials, SignedClient


def api_for(client, org, secret=None) -> SignedClient:
    return SignedClient(client, Credentials(org.app_id, secret or org.app_secret, org.key_plaintext, org.partner_id))


def flush(app):
    with app.app_context():
        request_log.flush()


def rows_of(html: str) -> list[str]:
    if "<tbody>" not in html:
        return []
    body = html.split("<tbody>", 1)[1].split("</tbody>", 1)[0]
    return body.split("<tr")[1:]


def log_url(org) -> str:
    return f"/developer/apps/{org.app_id}/requests"


def test_the_log_lists_requests_newest_first_with_their_columns(app, org, signed_in, client):
    api = api_for(client, org)
    assert api.get("/v1/key").status_code == 200
    refused = api.get("/v1/members", secret="secret_" + "z" * 40)
    assert refused.status_code == 401
    flush(app)
    html = signed_in.get(log_url(org)).get_data(as_text=True)
    for heading in ("Time", "Method", "Path", "Status", "Error", "Key", "Latency"):
        assert f'<th scope="col">{heading}</th>' in html
    first, second = rows_of(html)
    assert "/v1/members" in first and "invalid_signature" in first and ">401<" in first
    assert "/v1/key" in second and ">200<" in second and "Checkout" in second
    assert org.key_plaintext not in html and org.app_secret not in html


def test_filters_work_as_a_plain_get_form_and_over_htmx(app, org, signed_in, client):
    api = api_for(client, org)
    for _ in range(2):
        api.get("/v1/key")
    api.get("/v1/members?limit=0")
    api.get("/v1/members/mem_missing")
    flush(app)
    page = signed_in.get(log_url(org) + "?status=failed").get_data(as_text=True)
    assert len(rows_of(page)) == 2 and "<html" in page
    assert '<option value="failed" selected>Failed</option>' in page
    partial = signed_in.get(log_url(org) + "?status=succeeded", htmx=True).get_data(as_text=True)
    assert "<html" not in partial and 'id="request-records"' in partial
    assert len(rows_of(partial)) == 2 and "hx-get" in partial
    by_route = signed_in.get(log_url(org) + "?route=/v1/members/{member_id}").get_data(as_text=True)
    assert len(rows_of(by_route)) == 1 and "mem_missing" in by_route
    by_key = signed_in.get(log_url(org) + f"?key={org.key_id}&mode=test").get_data(as_text=True)
    assert len(rows_of(by_key)) == 4
    assert len(rows_of(signed_in.get(log_url(org) + "?mode=prod").get_data(as_text=True))) == 0
    # an unknown filter value is ignored, not an error
    assert signed_in.get(log_url(org) + "?status=bogus&key=999&before=zzz").status_code == 200


def _fill(app, org, n):
    with app.app_context():
        application = Application.get(Application.app_id == org.app_id)
        start = utcnow() - timedelta(minutes=n)
        for i in range(n):
            request_log.record(start + timedelta(minutes=i), f"req_{i:024x}", partner_id=org.partner_id,
                               application_id=application.id, api_key_id=org.key_id, key_masked="test_sk_x…y",
                               mode="test", method="GET", route="/v1/key", path=f"/v1/key?n={i}", status=200,
                               error_code=None, error_message=None, latency_ms=1.5, client_ip="127.0.0.1",
                               idempotency_key=None, replayed=False, user_agent=None, canonical_string=None)
        request_log.flush()


def test_older_pages_back_with_and_without_htmx(app, org, signed_in):
    _fill(app, org, request_log.PAGE_SIZE + 7)
    html = signed_in.get(log_url(org)).get_data(as_text=True)
    assert len(rows_of(html)) == request_log.PAGE_SIZE
    assert f"n={request_log.PAGE_SIZE + 6}<" in rows_of(html)[0]
    older = re.search(r'<a href="([^"]+)" hx-get="[^"]+" hx-target="#request-records"[^>]*>Older</a>', html)
    assert older, "no Older link"
    url = older.group(1).replace("&amp;", "&")
    second = signed_in.get(url).get_data(as_text=True)
    assert len(rows_of(second)) == 7 and "n=6<" in rows_of(second)[0] and "n=0<" in rows_of(second)[-1]
    assert ">Older<" not in second and ">Newest<" in second
    partial = signed_in.get(url, htmx=True).get_data(as_text=True)
    assert "<html" not in partial and len(rows_of(partial)) == 7


def test_request_id_finds_a_request_of_this_partner_only(app, org, other_org, signed_in, client):
    mine = api_for(client, org).get("/v1/key").headers["X-Request-Id"]
    theirs = api_for(client, other_org).get("/v1/key").headers["X-Request-Id"]
    flush(app)
    found = signed_in.get(log_url(org) + f"?request_id={mine}")
    assert found.status_code == 303 and found.headers["Location"].endswith(f"/requests/{mine}")
    missing = signed_in.get(log_url(org) + f"?request_id={theirs}")
    assert missing.status_code == 404 and "No request with the ID" in missing.get_data(as_text=True)
    # another partner's request, application and log are 404 however they are asked for
    assert signed_in.get(f"/developer/apps/{other_org.app_id}/requests/{theirs}").status_code == 404
    assert signed_in.get(f"/developer/apps/{org.app_id}/requests/{theirs}").status_code == 404
    assert signed_in.get(f"/developer/apps/{other_org.app_id}/requests").status_code == 404
    assert signed_in.post(f"/developer/apps/{other_org.app_id}/requests/{theirs}/compare",
                          {"string_to_sign": "x"}).status_code == 404


def _bad_signature(app, org, client):
    res = api_for(client, org, secret="secret_" + "q" * 40).get("/v1/members?limit=5&b=2")
    flush(app)
    return res.headers["X-Request-Id"], res.get_json()["error"]["canonical_string"]


def test_a_request_page_shows_every_field_and_compare_marks_the_first_differing_line(app, org, signed_in, client):
    rid, canonical = _bad_signature(app, org, client)
    page = signed_in.get(f"{log_url(org)}/{rid}").get_data(as_text=True)
    for label in ("Request ID", "Time", "Method", "Path", "Endpoint", "Status", "Error code", "Key", "Mode",
                  "Latency", "Client address", "Idempotency-Key", "User-Agent"):
        assert f"<dt>{label}</dt>" in page
    assert "The signature does not match" in page and "See the request log" not in page
    assert '<label for="string-to-sign">Your string to sign</label>' in page and ">Compare</button>" in page
    assert escape(canonical.split("\n")[3]) in page  # the canonical query line

    lines = canonical.split("\n")
    wrong_query = "\n".join(lines[:3] + ["limit=5&b=2"] + lines[4:])  # unsorted: the usual mistake
    url = f"{log_url(org)}/{rid}/compare"
    result = signed_in.post(url, {"string_to_sign": wrong_query.replace("\n", "\r\n")}).get_data(as_text=True)
    assert "Line 4 (query) differs." in result and "sorted by name" in result
    marked = re.findall(r'<span class="canonical-line( differs)?">', result)
    assert [bool(m) for m in marked] == [False, False, False, True, False, False, False, False]
    assert "limit=5&amp;b=2" in result  # their line, shown beside the server's

    partial = signed_in.post(url, {"string_to_sign": canonical}, htmx=True).get_data(as_text=True)
    assert "<html" not in partial and "The lines match." in partial and "different key" in partial


def test_a_viewer_reads_the_log_and_sees_no_control_that_changes_anything(app, org, client):
    _, viewer = teammate(app, org, "viewer")
    rid, canonical = _bad_signature(app, org, client)
    for url in (log_url(org), f"{log_url(org)}/{rid}", f"/developer/apps/{org.app_id}"):
        html = viewer.get(url).get_data(as_text=True)
        posts = re.findall(r'<form[^>]*method="post"[^>]*action="([^"]+)"', html)
        assert all(a.endswith("/compare#compare") or a.endswith("/logout") for a in posts), posts
        for control in ("Create API key</button>", ">Roll</button>", ">Revoke</button>", "Regenerate"):
            assert control not in html
    compared = viewer.post(f"{log_url(org)}/{rid}/compare", {"string_to_sign": canonical})
    assert compared.status_code == 200 and "The lines match." in compared.get_data(as_text=True)


def test_the_usage_chart_key_counts_and_home_totals(app, org, signed_in, client):
    api = api_for(client, org)
    for _ in range(3):
        api.get("/v1/key")
    api.get("/v1/members?limit=0")
    flush(app)
    html = signed_in.get(f"/developer/apps/{org.app_id}").get_data(as_text=True)
    assert "API requests, last 14 days" in html and 'role="img"' in html
    assert html.count("<title>") >= 14 and "3 succeeded, 1 failed" in html
    assert 'class="failed"' in html and "<script" not in html.split("<svg", 1)[1].split("</svg>", 1)[0]
    assert "4 requests</a> in 7 days" in html
    assert f'href="/developer/apps/{org.app_id}/requests"' in html  # the "Request log" link
    home = signed_in.get("/").get_data(as_text=True)
    assert re.search(r'stat-value">4</span><span class="stat-label">API requests today', home)
    assert re.search(r'stat-value stat-errors">1</span><span class="stat-label">Error today', home)
