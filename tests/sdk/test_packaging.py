"""`pip install ./sdk` into a clean virtual environment pulls in nothing of the server, and
the README's quick start then runs from it against the live server and prints a balance."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest


IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
SDK_DIR = Path(__file__).resolve().parents[2] / "sdk"
ALLOWED = {"loyalty-sdk", "requests", "urllib3", "idna", "charset-normalizer", "certifi",
           "pip", "setuptools", "wheel"}


def venv_env(**extra: str) -> dict:
    """This process's environment without PYTHONPATH (which would put a checkout's portal
    and loyalty_sdk in front of what the venv installed) or any LOYALTY_ variable."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH" and not k.startswith("LOYALTY_")}
    env.update(extra)
    return env


@pytest.fixture(scope="module")
def sdk_venv(tmp_path_factory) -> Path:
    """A fresh venv (no system site-packages) with only `pip install ./sdk` in it."""
    home = tmp_path_factory.mktemp("sdk-venv")
    venv = home / "venv"
    # Build from a copy, so no build/ or egg-info (stale or not) from the checkout gets in.
    source = shutil.copytree(SDK_DIR, home / "sdk", ignore=shutil.ignore_patterns(
        "build", "dist", "*.egg-info", "__pycache__"))
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    python = venv / "bin" / "python"
    result = subprocess.run([str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check",
                             str(source)], capture_output=True, text=True, timeout=600, env=venv_env())
    if result.returncode != 0:
        if IN_CI:
            pytest.fail(f"pip install ./sdk failed: {result.stderr[-2000:]}")
        pytest.skip(f"pip install ./sdk failed (no package index reachable?): {result.stderr[-300:]}")
    return python


def test_installing_the_sdk_pulls_in_nothing_of_the_server(sdk_venv):
    listed = subprocess.run([str(sdk_venv), "-m", "pip", "list", "--format=json", "--disable-pip-version-check"],
                            capture_output=True, text=True, check=True, timeout=120, env=venv_env())
    installed = {p["name"].lower().replace("_", "-"): p["version"] for p in json.loads(listed.stdout)}
    assert "loyalty-sdk" in installed and "requests" in installed
    assert set(installed) <= ALLOWED, f"unexpected packages: {set(installed) - ALLOWED}"
    probe = subprocess.run([str(sdk_venv), "-c", "import loyalty_sdk, importlib.util as u; "
                            "print(all(u.find_spec(m) is None for m in ('portal', 'flask', 'peewee')))"],
                           capture_output=True, text=True, timeout=60, cwd="/", env=venv_env())
    assert probe.stdout.strip() == "True", probe.stderr
    typed = subprocess.run([str(sdk_venv), "-c", "import loyalty_sdk, pathlib; "
                            "print((pathlib.Path(loyalty_sdk.__file__).parent / 'py.typed').exists())"],
                           capture_output=True, text=True, timeout=60, cwd="/", env=venv_env())
    assert typed.stdout.strip() == "True"


def test_the_installed_version_is_the_one_in_version_py(sdk_venv):
    """pyproject.toml reads the version from loyalty_sdk/_version.py: the wheel, the
    package and `loyalty-sdk --version` all say the same."""
    written = re.search(r'__version__ = "([^"]+)"', (SDK_DIR / "loyalty_sdk" / "_version.py").read_text()).group(1)
    shown = subprocess.run([str(sdk_venv), "-c", "import importlib.metadata as m, loyalty_sdk; "
                            "print(m.version('loyalty-sdk'), loyalty_sdk.__version__)"],
                           capture_output=True, text=True, timeout=60, cwd="/", env=venv_env())
    assert shown.stdout.split() == [written, written], shown.stderr
    script = subprocess.run([str(sdk_venv.parent / "loyalty-sdk"), "--version"], capture_output=True, text=True,
                            timeout=60, env=venv_env())
    assert script.stdout.strip() == f"loyalty-sdk {written}"


def test_the_readme_quick_start_prints_a_stamp_balance(sdk_venv, live_server):
    demo = live_server.demo()  # a plain `loyalty-portal demo`, as the README suggests
    readme = (SDK_DIR / "README.md").read_text()
    example = re.search(r"```python\n(.*?)```", readme, re.S).group(1)
    assert len(example.strip().splitlines()) <= 10
    env = venv_env(LOYALTY_APP_ID=demo["app_id"], LOYALTY_APP_SECRET=demo["app_secret"],
                   LOYALTY_API_KEY=demo["test_key"], LOYALTY_BASE_URL=live_server.url)
    result = subprocess.run([str(sdk_venv), "-c", example], env=env, capture_output=True, text=True,
                            timeout=60, cwd="/")
    assert result.returncode == 0, result.stderr
    assert re.fullmatch(r"Ana has 3 stamps on .+\n", result.stdout), result.stdout


def test_the_console_script_is_installed(sdk_venv):
    script = sdk_venv.parent / "loyalty-sdk"
    result = subprocess.run([str(script), "--help"], capture_output=True, text=True, timeout=60, env=venv_env())
    assert result.returncode == 0 and "whoami" in result.stdout
