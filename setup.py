"""The portal's build step beyond pyproject.toml: ship the SDK of this checkout as a wheel.

`build_py` writes `portal/sdk_dist/loyalty_sdk-<version>-py3-none-any.whl`, built from
`sdk/` by `portal/sdk_wheel.py`, into the portal's build, so `pip install .` (or a portal
wheel) serves it at /sdk/ without a network or build tools at run time. An editable
install writes nothing: it runs from the checkout, which builds the wheel from `sdk/` when
first asked, so it never serves a stale copy (portal/sdk_wheel.py).
"""

import importlib.util
import sys
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

HERE = Path(__file__).resolve().parent


def _sdk_wheel_module():
    # Loaded by path: importing the `portal` package would need Flask, absent from a build env.
    spec = importlib.util.spec_from_file_location("_portal_sdk_wheel", HERE / "portal" / "sdk_wheel.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


class BuildPyWithSdkWheel(build_py):
    """build_py, then the SDK wheel as package data of `portal`."""

    def run(self):
        super().run()
        if getattr(self, "editable_mode", False):
            return
        wheel = _sdk_wheel_module().build_wheel(HERE / "sdk")
        target = Path(self.build_lib) / "portal" / "sdk_dist"
        target.mkdir(parents=True, exist_ok=True)
        for old in target.glob("*.whl"):
            old.unlink()
        (target / wheel.filename).write_bytes(wheel.data)
        self.announce(f"shipping the SDK as portal/sdk_dist/{wheel.filename} (sha256 {wheel.sha256})", level=2)

    def get_outputs(self, include_bytecode=1):
        outputs = super().get_outputs(include_bytecode)
        if not getattr(self, "editable_mode", False):
            outputs += [str(p) for p in (Path(self.build_lib) / "portal" / "sdk_dist").glob("*.whl")]
        return outputs


setup(cmdclass={"build_py": BuildPyWithSdkWheel})
