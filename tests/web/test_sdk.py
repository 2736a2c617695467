"""The platform serves its SDK (DESIGN.md §7): /sdk/ names the version with its install
line and SHA-256, /sdk/readme renders the README safely, the wheel is the SDK of this
checkout, and every page that tells partners how to install says the same line."""

from __future__ import annotations

import hashlib
import html
import io
import re
import zipfile
from pathlib import Path

import pytest

from portal import create_app
from portal.sdk_wheel import SdkWheelError, build_wheel, find_wheel
from portal.web.sdk import render_markdown

ROOT = Path(__file__).resolve().parents[2]
SDK_DIR = ROOT / "sdk"
VERSION = re.search(r'__version__ = "([^"]+)"', (SDK_DIR / "loyalty_sdk" / "_version.py").read_text()).group(1)
WHEEL = f"loyalty_sdk-{VERSION}-py3-none-any.whl"
WHEEL_PATH = f"/sdk/{WHEEL}"


def text(response) -> str:
    return response.get_data(as_text=True)


def code_blocks(page: str) -> dict[str, str]:
    """The page's labelled code blocks, by aria-label, as a reader copies them."""
    return {label: html.unescape(code) for label, code in
            re.findall(r'<pre class="code" aria-label="([^"]+)"><code>(.*?)</code></pre>', page, re.S)}


def sdk_files() -> dict[str, bytes]:
    """sdk/loyalty_sdk/ as it is in this checkout (without bytecode)."""
    package = SDK_DIR / "loyalty_sdk"
    return {f"loyalty_sdk/{p.relative_to(package).as_posix()}": p.read_bytes() for p in sorted(package.rglob("*"))
            if p.is_file() and "__pycache__" not in p.parts and p.suffix != ".pyc"}


# -- the page -----------------------------------------------------------------------------


def test_the_sdk_page_is_public_and_shows_the_version_the_install_line_and_the_hash(client):
    response = client.get("/sdk/")
    assert response.status_code == 200
    page = text(response)
    wheel = client.get(WHEEL_PATH).data
    digest = hashlib.sha256(wheel).hexdigest()
    assert f"Install version {VERSION}" in page
    blocks = code_blocks(page)
    assert blocks["Install command"] == f'pip install "loyalty-sdk @ http://localhost{WHEEL_PATH}"'
    assert blocks["Pinned requirement"] == f"loyalty-sdk @ http://localhost{WHEEL_PATH} --hash=sha256:{digest}"
    assert f'<code class="digest">{digest}</code>' in page
    assert "not an extra index" in page and "unrelated <code>loyalty-sdk</code>" in page
    assert 'href="/sdk/readme"' in page and "requests&gt;=2.31" in page
    assert "script-src 'self'" in response.headers["Content-Security-Policy"]


def test_the_install_line_names_the_address_the_partner_reached_behind_a_trusted_proxy(tmp_path):
    app = create_app({"DATA_DIR": str(tmp_path), "TESTING": True, "TRUSTED_PROXIES": "1"})
    page = text(app.test_client().get("/sdk/", headers={"X-Forwarded-Proto": "https",
                                                        "X-Forwarded-Host": "loyalty.example.com"}))
    assert code_blocks(page)["Install command"] == \
        f'pip install "loyalty-sdk @ https://loyalty.example.com{WHEEL_PATH}"'


def test_a_signed_in_partner_finds_the_sdk_in_the_sidebar(signed_in):
    page = text(signed_in.get("/sdk/"))
    assert '<a href="/sdk/" aria-current="page" class="active">SDK</a>' in page
    assert 'href="/sdk/"' in text(signed_in.get("/"))


# -- the wheel ----------------------------------------------------------------------------


def test_the_wheel_is_a_zip_with_an_etag_and_caching_headers_and_revalidates(client):
    response = client.get(WHEEL_PATH)
    assert response.status_code == 200
    assert response.mimetype == "application/zip"
    assert response.headers["Content-Disposition"] == f"attachment; filename={WHEEL}"
    digest = hashlib.sha256(response.data).hexdigest()
    assert response.headers["ETag"] == f'"{digest}"'
    assert "public" in response.headers["Cache-Control"] and "max-age=3600" in response.headers["Cache-Control"]
    assert int(response.headers["Content-Length"]) == len(response.data)
    again = client.get(WHEEL_PATH, headers={"If-None-Match": response.headers["ETag"]})
    assert again.status_code == 304 and again.data == b""
    assert client.head(WHEEL_PATH).status_code == 200


@pytest.mark.parametrize("path", ["/sdk/loyalty_sdk-0.0.1-py3-none-any.whl", "/sdk/loyalty_sdk.whl",
                                  "/sdk/..%2Fpyproject.toml", "/sdk/README.md"])
def test_any_other_file_name_is_not_found(client, path):
    response = client.get(path)
    assert response.status_code == 404 and "Page not found" in text(response)


def test_the_wheel_is_the_sdk_of_this_checkout_same_version_same_files(client):
    archive = zipfile.ZipFile(io.BytesIO(client.get(WHEEL_PATH).data))
    assert archive.testzip() is None
    names = archive.namelist()
    dist_info = f"loyalty_sdk-{VERSION}.dist-info"
    assert {n for n in names if not n.startswith(dist_info)} == set(sdk_files())
    for name, content in sdk_files().items():
        assert archive.read(name) == content, name
    metadata = archive.read(f"{dist_info}/METADATA").decode()
    assert f"\nVersion: {VERSION}\n" in metadata and "\nName: loyalty-sdk\n" in metadata
    assert "\nRequires-Dist: requests>=2.31\n" in metadata
    assert metadata.endswith((SDK_DIR / "README.md").read_text())
    assert "loyalty-sdk = loyalty_sdk.cli:main" in archive.read(f"{dist_info}/entry_points.txt").decode()
    record = archive.read(f"{dist_info}/RECORD").decode().splitlines()
    assert sorted(line.split(",")[0] for line in record) == sorted(names)


def test_the_same_source_gives_the_same_bytes():
    """Every server of a deployment (and every worker) serves the same SHA-256."""
    assert build_wheel(SDK_DIR).data == build_wheel(SDK_DIR).data


def test_a_packaged_wheel_is_served_before_a_checkout(tmp_path):
    packaged = tmp_path / "sdk_dist"
    packaged.mkdir()
    built = build_wheel(SDK_DIR)
    (packaged / built.filename).write_bytes(built.data)
    found = find_wheel(packaged, tmp_path / "no-checkout")
    assert (found.filename, found.version, found.sha256) == (built.filename, VERSION, built.sha256)
    assert found.readme == built.readme and found.requires == ("requests>=2.31",)
    assert find_wheel(tmp_path / "empty", tmp_path / "no-checkout") is None


def test_a_pyproject_setting_the_builder_does_not_know_stops_the_build(tmp_path):
    import shutil

    sdk = shutil.copytree(SDK_DIR, tmp_path / "sdk", ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    pyproject = sdk / "pyproject.toml"
    pyproject.write_text(pyproject.read_text().replace('dependencies = [', 'optional-dependencies = {x = ["y"]}\n'
                                                       'dependencies = ['))
    with pytest.raises(SdkWheelError, match="optional-dependencies"):
        build_wheel(sdk)


def test_the_wheel_is_served_while_the_database_is_away(tmp_path):
    app = create_app({"DATA_DIR": str(tmp_path), "TESTING": True,
                      "DATABASE_URL": f"sqlite:///{tmp_path}/missing/dir/loyalty.db"})
    client = app.test_client()
    assert client.get("/login").status_code == 503
    response = client.get(WHEEL_PATH)
    assert response.status_code == 200 and response.data[:2] == b"PK"


# -- the README page ------------------------------------------------------------------------


def test_the_readme_page_renders_the_sdk_readme(client):
    response = client.get("/sdk/readme")
    assert response.status_code == 200
    page = text(response)
    assert "<h1>loyalty-sdk</h1>" in page and "<h2>Quick start</h2>" in page
    assert '<pre class="code"><code class="language-python">' in page
    assert "<table>" in page and "<th>resource</th>" in page
    assert f"README of version {VERSION}" in page and 'href="/sdk/"' in page
    assert code_blocks(page)["Install command"] == f'pip install "loyalty-sdk @ http://localhost{WHEEL_PATH}"'


def test_markdown_cannot_put_markup_or_script_on_the_page():
    rendered = str(render_markdown(
        "<script>alert(1)</script>\n\n<img src=x onerror=alert(1)>\n\n"
        "[click](javascript:alert(1)) [data](data:text/html,x) [ok](https://example.com/)\n\n"
        "`<b>` and **bold**"))
    assert "<script" not in rendered and "<img" not in rendered and "javascript:" not in rendered.split("[click]")[0]
    assert 'href="javascript' not in rendered and 'href="data' not in rendered
    assert "&lt;script&gt;" in rendered and '<a href="https://example.com/">ok</a>' in rendered
    assert "<code>&lt;b&gt;</code>" in rendered and "<strong>bold</strong>" in rendered


# -- every install line is the direct URL ----------------------------------------------------


def test_the_docs_pages_show_the_direct_url_install_line(client, signed_in):
    line = f'pip install "loyalty-sdk @ http://localhost{WHEEL_PATH}"'
    assert code_blocks(text(client.get("/docs/api")))["Install command"] == line
    assert html.escape(line, quote=False) in text(signed_in.get("/docs")).replace("&#34;", '"')


def test_no_partner_facing_text_tells_partners_to_install_from_a_checkout():
    """Templates never say `pip install ./sdk` (that is for people working on the platform);
    both READMEs show the direct-URL line; every wheel file name mentioned is this version's."""
    direct = f'pip install "loyalty-sdk @ https://loyalty.example.com/sdk/{WHEEL}"'
    for path in ROOT.glob("templates/**/*.html"):
        assert "pip install ./sdk" not in path.read_text(), path
    for path in (ROOT / "README.md", SDK_DIR / "README.md", ROOT / "docs" / "production.md"):
        content = path.read_text()
        if path.name == "README.md":
            assert direct in content, path
        for version in re.findall(r"loyalty_sdk-([0-9][^-\s]*)-py3-none-any\.whl", content):
            assert version == VERSION, f"{path} names loyalty_sdk-{version}"
    sdk_readme = (SDK_DIR / "README.md").read_text()
    assert sdk_readme.index(direct) < sdk_readme.index("pip install ./sdk")  # partners' line first
