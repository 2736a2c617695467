"""The portal's API docs page renders every endpoint of the OpenAPI document."""

from __future__ import annotations

import html

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
