"""Partners install the SDK from the portal itself (DESIGN.md §7, issue #15).

In one clean virtual environment, the install line an application's page shows installs
the wheel the live server serves; it pulls in nothing of the server, and the page's own
snippet and the README's quick start run signed calls from it. The served wheel is also
what the SDK's own build backend makes of sdk/ (`pip wheel ./sdk`), and the portal's own
build (`pip install .`) carries it as package data.

The venv is made without pip (seeding pip into it costs seconds on a busy machine) and the
page's line is run by this machine's pip aimed at it with `--python`: the same `pip
install` arguments a partner types into an activated venv. `requests` comes from whatever
index this machine's pip is configured with, as it would for a partner; the SDK itself can
only come from the portal's URL (a direct reference, checked in the installed
direct_url.json). The venv has no PYTHONPATH, so this checkout cannot shadow what it
installed.
"""

from __future__ import annotations

import configparser
import hashlib
import html
import io
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import zipfile
from email.parser import Parser
from pathlib import Path

import pytest
import requests

from portal.sdk_wheel import build_wheel

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
ROOT = Path(__file__).resolve().parents[2]
SDK_DIR = ROOT / "sdk"
VERSION = re.search(r'__version__ = "([^"]+)"', (SDK_DIR / "loyalty_sdk" / "_version.py").read_text()).group(1)
WHEEL = f"loyalty_sdk-{VERSION}-py3-none-any.whl"
ALLOWED = {"loyalty-sdk", "requests", "urllib3", "idna", "charset-normalizer", "certifi",
           "pip", "setuptools", "wheel"}
# What the portal's build reads; nothing else of the checkout is copied for it.
PORTAL_BUILD_INPUTS = ("pyproject.toml", "setup.py", "MANIFEST.in", "README.md", "portal", "templates", "sdk")
NOT_SOURCE = shutil.ignore_patterns("__pycache__", "*.py[cod]", "*.egg-info", "build", "dist", "sdk_dist")


def venv_env(**extra: str) -> dict:
    """This process's environment without PYTHONPATH (which would put a checkout's portal
    and loyalty_sdk in front of what the venv installed) or any LOYALTY_ variable."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH" and not k.startswith("LOYALTY_")}
    env.update(extra)
    return env


def pip(*args: str, timeout: int = 600) -> subprocess.CompletedProcess:
    """This machine's pip, outside the checkout's PYTHONPATH."""
    return subprocess.run([sys.executable, "-m", "pip", "--disable-pip-version-check", *args], capture_output=True,
                          text=True, timeout=timeout, env=venv_env(), cwd="/")


def pip_failed(result: subprocess.CompletedProcess, what: str):
    """Fail (under CI) or skip (no package index reachable?) with pip's last words."""
    if IN_CI:
        pytest.fail(f"{what} failed: {result.stderr[-2000:]}")
    pytest.skip(f"{what} failed (no package index reachable?): {result.stderr[-300:]}")


def code_block(page: str, label: str) -> str:
    match = re.search(rf'<pre class="code" aria-label="{label}"><code>(.*?)</code></pre>', page, re.S)
    assert match, f"no code block labelled {label!r}"
    return html.unescape(match.group(1))


@pytest.fixture(scope="module")
def application_page(live_server) -> dict:
    """A demo partner signed in to the live portal: its credentials, and the install line and
    Python snippet exactly as its application's page shows them."""
    demo = live_server.demo()
    browser = requests.Session()
    login = browser.get(live_server.url + "/login", timeout=30).text
    token = re.search(r'name="csrf_token" value="([^"]+)"', login).group(1)
    signed_in = browser.post(live_server.url + "/login", timeout=30, data={
        "email": demo["email"], "password": demo["password"], "csrf_token": token})
    assert signed_in.status_code == 200 and signed_in.url.rstrip("/") == live_server.url, signed_in.url
    page = browser.get(f"{live_server.url}/developer/apps/{demo['app_id']}", timeout=30).text
    return {"demo": demo, "install": code_block(page, "Install command"), "snippet": code_block(page, "Python example")}


@pytest.fixture(scope="module")
def sdk_venv(tmp_path_factory, application_page) -> Path:
    """A fresh venv (no system site-packages) into which the application page's install line
    has installed the SDK; its python."""
    venv = tmp_path_factory.mktemp("partner") / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    python = venv / "bin" / "python"
    words = shlex.split(application_page["install"])
    assert words[:2] == ["pip", "install"] and len(words) == 3, application_page["install"]
    result = pip("--python", str(python), "install", "-q", *words[2:])
    if result.returncode != 0:
        pip_failed(result, application_page["install"])
    return python


def run_in_venv(python: Path, *args: str, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(python), *args], capture_output=True, text=True, timeout=120, cwd="/",
                          env=venv_env(**env))


def test_the_application_pages_line_installs_the_wheel_the_portal_serves(sdk_venv, application_page, live_server):
    wheel_url = f"{live_server.url}/sdk/{WHEEL}"
    assert application_page["install"] == f'pip install "loyalty-sdk @ {wheel_url}"'
    shown = run_in_venv(sdk_venv, "-c", "import importlib.metadata as m, json; d = m.distribution('loyalty-sdk'); "
                        "print(json.dumps([d.version, json.loads(d.read_text('direct_url.json'))]))")
    version, origin = json.loads(shown.stdout)
    assert version == VERSION and origin["url"] == wheel_url  # from the portal, not from an index
    served = requests.get(wheel_url, timeout=30).content
    installed = run_in_venv(sdk_venv, "-c", "import loyalty_sdk, pathlib, json; root = pathlib.Path(loyalty_sdk.__file__)"
                            ".parent; print(json.dumps(sorted(p.name for p in root.iterdir() if p.is_file())))")
    with zipfile.ZipFile(io.BytesIO(served)) as archive:
        packaged = sorted(Path(n).name for n in archive.namelist() if n.startswith("loyalty_sdk/"))
    assert json.loads(installed.stdout) == packaged


def test_installing_the_sdk_pulls_in_nothing_of_the_server(sdk_venv):
    listed = pip("--python", str(sdk_venv), "list", "--format=json")
    installed = {p["name"].lower().replace("_", "-"): p["version"] for p in json.loads(listed.stdout)}
    assert "loyalty-sdk" in installed and "requests" in installed
    assert set(installed) <= ALLOWED, f"unexpected packages: {set(installed) - ALLOWED}"
    probe = run_in_venv(sdk_venv, "-c", "import loyalty_sdk, importlib.util as u; "
                        "print(all(u.find_spec(m) is None for m in ('portal', 'flask', 'peewee')))")
    assert probe.stdout.strip() == "True", probe.stderr
    typed = run_in_venv(sdk_venv, "-c", "import loyalty_sdk, pathlib; "
                        "print((pathlib.Path(loyalty_sdk.__file__).parent / 'py.typed').exists())")
    assert typed.stdout.strip() == "True"


def test_the_installed_version_is_the_one_in_version_py(sdk_venv):
    """pyproject.toml reads the version from loyalty_sdk/_version.py: the wheel, the
    package and `loyalty-sdk --version` all say the same."""
    shown = run_in_venv(sdk_venv, "-c", "import importlib.metadata as m, loyalty_sdk; "
                        "print(m.version('loyalty-sdk'), loyalty_sdk.__version__)")
    assert shown.stdout.split() == [VERSION, VERSION], shown.stderr
    script = subprocess.run([str(sdk_venv.parent / "loyalty-sdk"), "--version"], capture_output=True, text=True,
                            timeout=60, env=venv_env())
    assert script.stdout.strip() == f"loyalty-sdk {VERSION}"


def test_the_application_pages_snippet_runs_a_signed_call(sdk_venv, application_page, live_server):
    demo = application_page["demo"]
    snippet = application_page["snippet"]
    assert demo["app_secret"] not in snippet and demo["test_key"] not in snippet
    result = run_in_venv(sdk_venv, "-c", snippet, LOYALTY_APP_ID=demo["app_id"], LOYALTY_APP_SECRET=demo["app_secret"],
                         LOYALTY_API_KEY=demo["test_key"], LOYALTY_BASE_URL=live_server.url)
    assert result.returncode == 0, result.stderr
    assert f"app_id={demo['app_id']!r}" in result.stdout and "mode='test'" in result.stdout, result.stdout


def test_the_readme_quick_start_prints_a_stamp_balance(sdk_venv, live_server):
    demo = live_server.demo()  # a plain `loyalty-portal demo`, as the README suggests
    readme = (SDK_DIR / "README.md").read_text()
    example = re.search(r"```python\n(.*?)```", readme, re.S).group(1)
    assert len(example.strip().splitlines()) <= 10
    result = run_in_venv(sdk_venv, "-c", example, LOYALTY_APP_ID=demo["app_id"], LOYALTY_APP_SECRET=demo["app_secret"],
                         LOYALTY_API_KEY=demo["test_key"], LOYALTY_BASE_URL=live_server.url)
    assert result.returncode == 0, result.stderr
    assert re.fullmatch(r"Ana has 3 stamps on .+\n", result.stdout), result.stdout


def test_the_console_script_is_installed(sdk_venv):
    script = sdk_venv.parent / "loyalty-sdk"
    result = subprocess.run([str(script), "--help"], capture_output=True, text=True, timeout=60, env=venv_env())
    assert result.returncode == 0 and "whoami" in result.stdout


def test_the_pinned_line_of_the_sdk_page_passes_pips_hash_check(live_server, tmp_path):
    page = requests.get(live_server.url + "/sdk/", timeout=30).text
    pinned = code_block(page, "Pinned requirement")
    served = requests.get(f"{live_server.url}/sdk/{WHEEL}", timeout=30).content
    assert pinned.endswith(f"--hash=sha256:{hashlib.sha256(served).hexdigest()}")
    (tmp_path / "good.txt").write_text(pinned + "\n")
    (tmp_path / "bad.txt").write_text(pinned[:-8] + "00000000\n")
    good = pip("download", "-q", "--no-deps", "-r", str(tmp_path / "good.txt"), "-d", str(tmp_path / "got"))
    assert good.returncode == 0, good.stderr
    assert (tmp_path / "got" / WHEEL).read_bytes() == served
    bad = pip("download", "-q", "--no-deps", "-r", str(tmp_path / "bad.txt"), "-d", str(tmp_path / "not"))
    assert bad.returncode != 0 and "DO NOT MATCH THE HASHES" in bad.stderr


# -- the builds ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def setuptools_builds(tmp_path_factory) -> Path:
    """`pip wheel` of sdk/ (the SDK's own backend) and of the portal, from copies of this
    checkout's sources, in one pip run; the folder holding both wheels."""
    home = tmp_path_factory.mktemp("builds")
    portal = home / "portal"
    portal.mkdir()
    for name in PORTAL_BUILD_INPUTS:
        source = ROOT / name
        if source.is_dir():
            shutil.copytree(source, portal / name, ignore=NOT_SOURCE)
        else:
            shutil.copy2(source, portal / name)
    sdk = shutil.copytree(SDK_DIR, home / "sdk", ignore=NOT_SOURCE)
    result = pip("wheel", "-q", "--no-deps", str(sdk), str(portal), "-w", str(home / "out"))
    if result.returncode != 0:
        pip_failed(result, "pip wheel ./sdk .")
    return home / "out"


def _metadata(archive: zipfile.ZipFile) -> dict:
    name = next(n for n in archive.namelist() if n.endswith(".dist-info/METADATA"))
    message = Parser().parsestr(archive.read(name).decode())
    fields = ("Name", "Version", "Summary", "Requires-Python", "Description-Content-Type")
    return {**{f: message[f] for f in fields}, "Requires-Dist": sorted(message.get_all("Requires-Dist") or []),
            "README": message.get_payload()}


def _entry_points(archive: zipfile.ZipFile) -> dict:
    name = next(n for n in archive.namelist() if n.endswith(".dist-info/entry_points.txt"))
    parser = configparser.ConfigParser()
    parser.read_string(archive.read(name).decode())
    return {section: dict(parser[section]) for section in parser.sections()}


def test_the_served_wheel_is_what_the_sdks_own_build_makes_of_sdk(setuptools_builds, live_server):
    """portal/sdk_wheel.py builds what `pip install ./sdk` installs: the same files with the
    same contents, the same metadata and console script."""
    ours = zipfile.ZipFile(io.BytesIO(requests.get(f"{live_server.url}/sdk/{WHEEL}", timeout=30).content))
    theirs = zipfile.ZipFile(setuptools_builds / WHEEL)

    def package_files(archive):
        return {n: archive.read(n) for n in archive.namelist() if ".dist-info/" not in n}

    assert package_files(ours) == package_files(theirs)
    assert _metadata(ours) == _metadata(theirs)
    assert _entry_points(ours) == _entry_points(theirs) == {"console_scripts": {"loyalty-sdk": "loyalty_sdk.cli:main"}}


def test_the_portals_build_carries_the_sdk_wheel_and_an_installed_portal_serves_it(setuptools_builds, tmp_path):
    """`pip install .` brings the wheel along: the portal's wheel holds it as package data,
    and that installed layout (no sdk/ folder beside it) serves the packaged file."""
    portal_wheel = next(setuptools_builds.glob("loyalty_portal-*.whl"))
    with zipfile.ZipFile(portal_wheel) as archive:
        assert [n for n in archive.namelist() if n.startswith("portal/sdk_dist/")] == [f"portal/sdk_dist/{WHEEL}"]
        packaged = archive.read(f"portal/sdk_dist/{WHEEL}")
        archive.extractall(tmp_path / "site")
    assert packaged == build_wheel(SDK_DIR).data
    found = subprocess.run(
        [sys.executable, "-c", "import json, portal.sdk_wheel as s; w = s.find_wheel(); "
         "print(json.dumps([str(s.PACKAGED_DIR), s.CHECKOUT_SDK_DIR.exists(), w.filename, w.sha256]))"],
        capture_output=True, text=True, timeout=60, cwd="/", env=venv_env(PYTHONPATH=str(tmp_path / "site")))
    assert found.returncode == 0, found.stderr
    assert json.loads(found.stdout) == [str(tmp_path / "site" / "portal" / "sdk_dist"), False, WHEEL,
                                        hashlib.sha256(packaged).hexdigest()]
