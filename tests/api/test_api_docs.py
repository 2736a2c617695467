"""The portal's API docs page renders every endpoint of the OpenAPI document."""

from __future__ import annotations

import html
import re

import pytest

pytestmark = pytest.mark.sqlite_only  # a page of static content: one engine is enough


def test_api_docs_page_lists_every_operation_with_its_scope(client):
    document = client.get("/v1/openapi.json").get_json()
    page = client.get("/docs/api")
    assert page.status_code == 200
    text = html.unescape(page.get_data(as_text=True)).replace("<wbr>", "")  # paths may wrap after a "/"
    for path, item in document["paths"].items():
        for method, operation in item.items():
            assert f'id="op-{operation["operationId"]}"' in text, f"{method} {path}"
            assert path in text
            if operation["x-required-scope"]:
                assert f"Scope: <code>{operation['x-required-scope']}</code>" in text


def test_api_docs_page_explains_signing_with_a_worked_example(client, signing_vectors):
    text = html.unescape(client.get("/docs/api").get_data(as_text=True))
    case = next(c for c in signing_vectors["cases"] if c["method"] == "POST" and c["path_and_query"] == "/v1/members")
    assert case["canonical_string"] in text
    assert case["signature_header"] in text
    for code in ("missing_api_key", "invalid_signature", "replayed_request", "insufficient_scope"):
        assert code in text


def test_api_docs_page_says_escapes_are_utf8_with_the_vectors_examples(client, signing_vectors):
    text = html.unescape(client.get("/docs/api").get_data(as_text=True))
    valid = next(c for c in signing_vectors["cases"] if c["path_and_query"].endswith("code=%C3%BF"))
    refused = next(c for c in signing_vectors["refused"] if c["path_and_query"].endswith("code=%FF"))
    assert f"GET {valid['path_and_query']}" in text
    assert f"canonical query <code>{valid['canonical_string'].split(chr(10))[3]}</code>" in text
    assert f"GET {refused['path_and_query']}</code> is answered 400 <code>invalid_request</code>" in text
    assert f"<code>param</code> <code>{refused['error']['param']}</code>" in text


def test_plain_requests_example_runs_against_the_real_server(live_server):
    """The page's "nothing but requests" example, copied as a partner would, works."""
    import os
    import re
    import subprocess
    import sys

    import requests

    page = requests.get(live_server.url + "/docs/api", timeout=10).text
    blocks = [html.unescape(b) for b in re.findall(r"<pre class=\"code\"><code>(.*?)</code></pre>", page, re.S)]
    example = next(b for b in blocks if "import requests" in b and "loyalty_sdk" not in b)
    demo = live_server.demo()
    env = {**os.environ, "LOYALTY_APP_ID": demo["app_id"], "LOYALTY_APP_SECRET": demo["app_secret"],
           "LOYALTY_API_KEY": demo["test_key"]}
    result = subprocess.run([sys.executable, "-c", example], env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert "'mode': 'test'" in result.stdout
    assert "'object': 'member'" in result.stdout


def test_sdk_example_runs_against_the_real_server(live_server):
    """The page's SDK example (create a member, send and verify a test-mode code) works."""
    import os
    import re
    import subprocess
    import sys

    import requests

    pytest.importorskip("loyalty_sdk")
    page = requests.get(live_server.url + "/docs/api", timeout=10).text
    blocks = [html.unescape(b) for b in re.findall(r"<pre class=\"code\"><code>(.*?)</code></pre>", page, re.S)]
    example = next(b for b in blocks if "from loyalty_sdk import LoyaltyClient" in b)
    demo = live_server.demo()
    env = {**os.environ, "LOYALTY_APP_ID": demo["app_id"], "LOYALTY_APP_SECRET": demo["app_secret"],
           "LOYALTY_API_KEY": demo["test_key"]}
    result = subprocess.run([sys.executable, "-c", example], env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert demo["app_id"] in result.stdout


def test_descriptions_show_backtick_spans_as_code_and_never_raw_html():
    """Markdown `spans` in descriptions become <code>; anything else in them stays text."""
    from portal.web.docs import inline_code

    assert str(inline_code("Add `count` stamps on `card_id`")) == "Add <code>count</code> stamps on <code>card_id</code>"
    assert str(inline_code("a `<b>` & <i>x</i>")) == "a <code>&lt;b&gt;</code> &amp; &lt;i&gt;x&lt;/i&gt;"


def test_api_docs_page_prints_no_markdown_and_one_description_per_error(client):
    page = client.get("/docs/api").get_data(as_text=True)
    prose = re.sub(r"<pre.*?</pre>", "", page, flags=re.S)
    assert "`" not in prose  # backtick spans are rendered, not printed
    assert "Add <code>count</code> (1-1000) stamps on <code>card_id</code>" in page
    assert "; or:" not in page
    # The generic idempotency conflicts are explained once, not on every POST.
    assert page.count("idempotency_request_in_progress") == 1


@pytest.mark.browser
@pytest.mark.parametrize("width", [390, 1280])
def test_api_docs_page_fits_the_window_logged_out(browser, live_server, width):
    """Nothing on the public page is wider than a phone's window (no cut-off left side)."""
    context = browser.new_context(base_url=live_server.url, viewport={"width": width, "height": 844})
    try:
        page = context.new_page()
        page.goto("/docs/api")
        assert page.evaluate("document.documentElement.scrollWidth") <= width
        article = page.locator("article.api-docs").bounding_box()
        assert article["x"] >= 0 and article["x"] + article["width"] <= width
    finally:
        context.close()
