"""The SDK area: the platform serves its own Python SDK (DESIGN.md §7), to anyone.

`/sdk/` names the version with its install line, `/sdk/readme` is the SDK's README as a
page, and `/sdk/loyalty_sdk-<version>-py3-none-any.whl` is the wheel itself. All three
are public: a partner's developer (or their CI) fetches the wheel with pip, with no
portal log-in. The wheel comes from portal.sdk_wheel (packaged with an installed portal,
built from sdk/ in a checkout) and does not need the database.

Partners install from a direct URL, never from an extra index: with `--extra-index-url`
pip takes the highest version any index offers, so PyPI's unrelated `loyalty-sdk` could
win.
"""

from __future__ import annotations

import io

from flask import Blueprint, abort, render_template, send_file, url_for
from markdown_it import MarkdownIt
from markdown_it.renderer import RendererHTML
from markupsafe import Markup

from portal.sdk_wheel import SdkWheel, served_wheel

bp = Blueprint("sdk", __name__)

WHEEL_MIMETYPE = "application/zip"  # a wheel is a zip archive; pip reads it whatever the type
WHEEL_MAX_AGE = 3600  # seconds; the ETag lets caches revalidate cheaply after that

# CommonMark plus tables, with raw HTML off (shown as text) and links checked (no
# javascript: or data: URLs): the README cannot put markup or script on the page.
_markdown = MarkdownIt("js-default", {"html": False, "linkify": False, "typographer": False})


def _styled(rule):
    # Code blocks look like every other code block of the portal (pre.code).
    def render(self, tokens, idx, options, env):
        return getattr(RendererHTML, rule)(self, tokens, idx, options, env).replace("<pre>", '<pre class="code">', 1)
    return render


for _rule in ("fence", "code_block"):
    _markdown.add_render_rule(_rule, _styled(_rule))


def wheel_url(wheel: SdkWheel) -> str:
    """The wheel's absolute URL, as this request reached the portal (after trusted proxies)."""
    return url_for("sdk.wheel", filename=wheel.filename, _external=True)


def install_command(wheel: SdkWheel) -> str:
    """The line partners run: a direct URL reference (PEP 440), so no index is consulted for the SDK."""
    return f'pip install "loyalty-sdk @ {wheel_url(wheel)}"'


def pinned_requirement(wheel: SdkWheel) -> str:
    """The requirements-file line that pins the wheel by its SHA-256."""
    return f"loyalty-sdk @ {wheel_url(wheel)} --hash=sha256:{wheel.sha256}"


def render_markdown(text: str) -> Markup:
    """Markdown as safe HTML: raw HTML in the source is escaped, unsafe link schemes dropped."""
    return Markup(_markdown.render(text))


@bp.app_context_processor
def _sdk_helpers():
    # For the install lines on other pages (the application snippet, the docs).
    return {"sdk_wheel": served_wheel, "sdk_install_command": install_command}


@bp.get("/sdk/")
def index():
    """The SDK's version, its install line (plain and pinned by hash) and the wheel's SHA-256."""
    wheel = served_wheel()
    if wheel is None:
        return render_template("sdk/index.html", wheel=None), 503
    return render_template("sdk/index.html", wheel=wheel, wheel_url=wheel_url(wheel),
                           install=install_command(wheel), pinned=pinned_requirement(wheel))


@bp.get("/sdk/readme")
def readme():
    """The README of the SDK being served, rendered from the wheel's own metadata."""
    wheel = served_wheel()
    if wheel is None:
        abort(404)
    return render_template("sdk/readme.html", wheel=wheel, readme=render_markdown(wheel.readme))


@bp.get("/sdk/<filename>")
def wheel(filename):
    """The wheel, at its versioned file name only; revalidated by ETag (its SHA-256)."""
    served = served_wheel()
    if served is None or filename != served.filename:
        abort(404)
    return send_file(io.BytesIO(served.data), mimetype=WHEEL_MIMETYPE, as_attachment=True,
                     download_name=served.filename, etag=served.sha256, conditional=True,
                     max_age=WHEEL_MAX_AGE)
