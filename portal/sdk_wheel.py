"""The SDK wheel the portal serves at /sdk/ (DESIGN.md §7): built from `sdk/`, never at a
partner's request from the network or with build tools.

Partners install the SDK with `pip install "loyalty-sdk @ <base url>/sdk/<wheel>"`, so
the portal must hold the wheel of the SDK it ships with:

- an installed portal (`pip install .`, or a portal wheel) carries it as package data,
  `portal/sdk_dist/<wheel>`, written by the build step in `setup.py`;
- a checkout (an editable install, or the worktree on PYTHONPATH, as the tests run it)
  has no such file: it builds the wheel from the `sdk/` folder beside `portal/` the first
  time it is asked, in memory, so it always serves the SDK source it sits next to. An
  editable install writes nothing at install time for the same reason: a wheel made then
  would go stale as soon as someone edits the SDK.

Both paths use `build_wheel` below, a small builder for exactly what `sdk/pyproject.toml`
declares (a pure-Python package, its package data, its console script): standard-library
only, so no setuptools or network is needed when the portal runs, and deterministic (fixed
timestamps, sorted entries), so building the same source again gives the same bytes and
SHA-256 (every worker of a checkout serves one file). It refuses any pyproject setting it does not build rather than
ship a wheel that differs from what `pip install ./sdk` makes; tests/sdk/test_packaging.py
compares the two.

This module imports nothing from the rest of `portal`: setup.py loads it by path, in a
build environment that has none of the portal's dependencies.
"""

from __future__ import annotations

import ast
import base64
import fnmatch
import hashlib
import io
import re
import threading
import tomllib
import zipfile
from dataclasses import dataclass
from email.parser import Parser
from pathlib import Path


def _log():
    """The platform's logger, imported when serving (setup.py loads this file on its own,
    without the portal package)."""
    from portal.logs import get_logger

    return get_logger(__name__)

PACKAGED_DIR = Path(__file__).resolve().parent / "sdk_dist"
CHECKOUT_SDK_DIR = Path(__file__).resolve().parent.parent / "sdk"

WHEEL_TAG = "py3-none-any"
GENERATOR = "loyalty-portal (portal/sdk_wheel.py)"
_ZIP_TIME = (1980, 1, 1, 0, 0, 0)  # the earliest time a zip can hold: same bytes on every build
_PUBLIC_VERSION = re.compile(r"^\d+(\.\d+)*((a|b|rc)\d+)?(\.post\d+)?(\.dev\d+)?$")
_README_TYPES = {".md": "text/markdown", ".rst": "text/x-rst", ".txt": "text/plain"}

# What build_wheel knows how to build; anything else in sdk/pyproject.toml stops the build.
_PROJECT_KEYS = {"name", "version", "dynamic", "description", "readme", "requires-python", "dependencies", "scripts"}
_SETUPTOOLS_KEYS = {"dynamic", "packages", "package-data"}


class SdkWheelError(Exception):
    """The SDK cannot be built into a wheel (a pyproject setting this builder does not know,
    a missing file, an unusable version)."""


@dataclass(frozen=True)
class SdkWheel:
    """A built SDK wheel: its file name, version, bytes, SHA-256 (hex), README (Markdown) and
    what it needs to install (Requires-Python, Requires-Dist)."""

    filename: str
    version: str
    data: bytes
    sha256: str
    readme: str
    requires_python: str = ""
    requires: tuple[str, ...] = ()

    @property
    def size(self) -> int:
        return len(self.data)


# -- building ---------------------------------------------------------------------------


def build_wheel(sdk_dir: Path) -> SdkWheel:
    """Build the wheel `sdk_dir/pyproject.toml` describes, in memory."""
    sdk_dir = Path(sdk_dir)
    try:
        pyproject = tomllib.loads((sdk_dir / "pyproject.toml").read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise SdkWheelError(f"cannot read {sdk_dir / 'pyproject.toml'}: {exc}") from None
    project = pyproject.get("project", {})
    setuptools = pyproject.get("tool", {}).get("setuptools", {})
    _refuse_unknown(project, _PROJECT_KEYS, "[project]")
    _refuse_unknown(setuptools, _SETUPTOOLS_KEYS, "[tool.setuptools]")

    name = project.get("name")
    if not name:
        raise SdkWheelError("sdk/pyproject.toml has no [project] name")
    version = _version(sdk_dir, project, setuptools)
    dist = re.sub(r"[-_.]+", "_", name).lower()
    dist_info = f"{dist}-{version}.dist-info"

    if (sdk_dir / "MANIFEST.in").exists():
        raise SdkWheelError("sdk/MANIFEST.in adds files that portal/sdk_wheel.py does not build")
    packages = _packages(sdk_dir, setuptools)
    package_data = _package_data(setuptools, [package for package, _ in packages])
    files: dict[str, bytes] = {}
    for package, directory in packages:
        prefix = package.replace(".", "/")
        patterns = ["*.py", *package_data.get(package, []), *package_data.get("*", [])]
        for path in sorted(directory.iterdir()):
            if path.is_file() and any(fnmatch.fnmatch(path.name, p) for p in patterns):
                files[f"{prefix}/{path.name}"] = path.read_bytes()
    if not files:
        raise SdkWheelError(f"no package found in {sdk_dir}")

    readme_text, readme_type = _readme(sdk_dir, project.get("readme"))
    meta = ["Metadata-Version: 2.1", f"Name: {name}", f"Version: {version}"]
    if project.get("description"):
        meta.append(f"Summary: {project['description']}")
    if project.get("requires-python"):
        meta.append(f"Requires-Python: {project['requires-python']}")
    meta += [f"Requires-Dist: {requirement}" for requirement in project.get("dependencies", [])]
    if readme_text is not None:
        meta.append(f"Description-Content-Type: {readme_type}")
    metadata = "\n".join(meta) + "\n"
    if readme_text is not None:
        metadata += "\n" + readme_text
    files[f"{dist_info}/METADATA"] = metadata.encode("utf-8")
    files[f"{dist_info}/WHEEL"] = (f"Wheel-Version: 1.0\nGenerator: {GENERATOR}\nRoot-Is-Purelib: true\n"
                                   f"Tag: {WHEEL_TAG}\n").encode()
    scripts = project.get("scripts", {})
    if scripts:
        lines = ["[console_scripts]", *(f"{script} = {target}" for script, target in sorted(scripts.items()))]
        files[f"{dist_info}/entry_points.txt"] = ("\n".join(lines) + "\n").encode()

    record = [f"{path},sha256={_record_hash(data)},{len(data)}" for path, data in files.items()]
    files[f"{dist_info}/RECORD"] = ("\n".join(record + [f"{dist_info}/RECORD,,"]) + "\n").encode()

    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        # Packages first, dist-info last with RECORD at the very end, as the wheel spec advises.
        for path in sorted(files, key=lambda p: (p.startswith(dist_info), p == f"{dist_info}/RECORD", p)):
            entry = zipfile.ZipInfo(path, date_time=_ZIP_TIME)
            entry.compress_type = zipfile.ZIP_DEFLATED
            entry.external_attr = 0o100644 << 16
            archive.writestr(entry, files[path], compresslevel=9)
    data = buffer.getvalue()
    return SdkWheel(filename=f"{dist}-{version}-{WHEEL_TAG}.whl", version=version, data=data,
                    sha256=hashlib.sha256(data).hexdigest(), readme=readme_text or "",
                    requires_python=project.get("requires-python", ""),
                    requires=tuple(project.get("dependencies", [])))


def _refuse_unknown(table: dict, known: set[str], where: str) -> None:
    unknown = sorted(set(table) - known)
    if unknown:
        raise SdkWheelError(
            f"sdk/pyproject.toml sets {', '.join(unknown)} in {where}, which portal/sdk_wheel.py does not "
            "build: teach build_wheel to, so the served wheel stays what `pip install ./sdk` installs")


def _version(sdk_dir: Path, project: dict, setuptools: dict) -> str:
    if "version" in project:
        version = project["version"]
    else:
        attr = setuptools.get("dynamic", {}).get("version", {}).get("attr")
        if "version" not in project.get("dynamic", []) or not attr or "." not in attr:
            raise SdkWheelError("sdk/pyproject.toml needs a version, or a dynamic version with an attr")
        module, _, variable = attr.rpartition(".")
        base = sdk_dir.joinpath(*module.split("."))
        source = base.with_suffix(".py") if base.with_suffix(".py").is_file() else base / "__init__.py"
        try:
            tree = ast.parse(source.read_text(encoding="utf-8"))
        except (OSError, SyntaxError) as exc:
            raise SdkWheelError(f"cannot read the version from {source}: {exc}") from None
        found = [node.value.value for node in tree.body
                 if isinstance(node, ast.Assign) and isinstance(node.value, ast.Constant)
                 and isinstance(node.value.value, str)
                 and any(isinstance(t, ast.Name) and t.id == variable for t in node.targets)]
        if not found:
            raise SdkWheelError(f"{source} does not assign {variable} a string")
        version = found[-1]
    if not isinstance(version, str) or not _PUBLIC_VERSION.match(version):
        raise SdkWheelError(f"the SDK's version {version!r} is not a plain release number such as 1.2.0")
    return version


def _packages(sdk_dir: Path, setuptools: dict) -> list[tuple[str, Path]]:
    """(dotted name, folder) of every package `packages.find` selects, parents before children."""
    packages_setting = setuptools.get("packages", {})
    if not isinstance(packages_setting, dict) or set(packages_setting) - {"find"}:
        raise SdkWheelError("portal/sdk_wheel.py builds packages from [tool.setuptools.packages.find] only")
    find = packages_setting.get("find", {})
    if set(find) - {"include"}:
        raise SdkWheelError(f"[tool.setuptools.packages.find] sets {sorted(set(find) - {'include'})}, "
                            "which portal/sdk_wheel.py does not build")
    include = find.get("include", ["*"])
    found: list[tuple[str, Path]] = []

    def walk(directory: Path, dotted: str) -> None:
        for child in sorted(directory.iterdir()):
            if not child.is_dir() or not child.name.isidentifier() or not (child / "__init__.py").is_file():
                continue  # setuptools' find: only folders with __init__.py, and nothing below others
            name = f"{dotted}.{child.name}" if dotted else child.name
            if any(fnmatch.fnmatchcase(name, pattern) for pattern in include):
                found.append((name, child))
            walk(child, name)

    walk(sdk_dir, "")
    return found


def _package_data(setuptools: dict, packages: list[str]) -> dict[str, list[str]]:
    """[tool.setuptools.package-data]: file-name patterns per package (or "*" for all)."""
    package_data = setuptools.get("package-data", {})
    for package, patterns in package_data.items():
        if package != "*" and package not in packages:
            raise SdkWheelError(f"[tool.setuptools.package-data] names {package!r}, which is not a package of the SDK")
        if any("/" in pattern or "**" in pattern for pattern in patterns):
            raise SdkWheelError("portal/sdk_wheel.py builds package-data patterns of file names only (no folders)")
    return package_data


def _readme(sdk_dir: Path, readme) -> tuple[str | None, str | None]:
    if readme is None:
        return None, None
    if not isinstance(readme, str):
        raise SdkWheelError("portal/sdk_wheel.py reads `readme` as a file name only")
    path = sdk_dir / readme
    kind = _README_TYPES.get(path.suffix.lower())
    if kind is None:
        raise SdkWheelError(f"the README {readme} is not .md, .rst or .txt")
    try:
        return path.read_text(encoding="utf-8"), kind
    except OSError as exc:
        raise SdkWheelError(f"cannot read {path}: {exc}") from None


def _record_hash(data: bytes) -> str:
    return base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()


# -- what the portal serves -------------------------------------------------------------


def read_wheel(path: Path) -> SdkWheel:
    """A wheel file (the packaged one): its bytes, version and the README inside its METADATA."""
    data = Path(path).read_bytes()
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        metadata_name = next((n for n in archive.namelist() if n.endswith(".dist-info/METADATA")), None)
        if metadata_name is None:
            raise SdkWheelError(f"{path} has no METADATA")
        message = Parser().parsestr(archive.read(metadata_name).decode("utf-8"))
    return SdkWheel(filename=Path(path).name, version=message["Version"], data=data,
                    sha256=hashlib.sha256(data).hexdigest(), readme=message.get_payload() or "",
                    requires_python=message.get("Requires-Python", ""),
                    requires=tuple(message.get_all("Requires-Dist") or ()))


def find_wheel(packaged_dir: Path = PACKAGED_DIR, checkout_sdk_dir: Path = CHECKOUT_SDK_DIR) -> SdkWheel | None:
    """The wheel to serve: the packaged one of an installed portal, else one built from a
    checkout's sdk/ folder; None when there is neither (logged)."""
    packaged = sorted(Path(packaged_dir).glob("*.whl")) if Path(packaged_dir).is_dir() else []
    if len(packaged) > 1:
        _log().warning("several SDK wheels in %s: serving %s", packaged_dir, packaged[-1].name)
    if packaged:
        return read_wheel(packaged[-1])
    if (Path(checkout_sdk_dir) / "pyproject.toml").is_file():
        return build_wheel(checkout_sdk_dir)
    _log().error("no SDK wheel to serve: %s is empty and there is no sdk/ checkout at %s "
              "(install the portal with pip, which builds it)", packaged_dir, checkout_sdk_dir)
    return None


_served: list[SdkWheel | None] = []
_served_lock = threading.Lock()


def served_wheel() -> SdkWheel | None:
    """The SDK wheel this process serves (found or built once, then kept)."""
    with _served_lock:
        if not _served:
            try:
                _served.append(find_wheel())
            except SdkWheelError as exc:
                _log().error("the SDK wheel cannot be built: %s", exc)
                _served.append(None)
        return _served[0]
