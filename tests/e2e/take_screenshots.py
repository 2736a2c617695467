"""Screenshots of every portal page at laptop and phone width, for a person to look at.

    python3 tests/e2e/take_screenshots.py [/tmp/screens]

Not a test (nothing is asserted): it starts its own server on a temporary data dir.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

from playwright.sync_api import sync_playwright

import portal  # noqa: F401  (imported before tests/ joins sys.path)

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from conftest import LiveServer

CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]
WIDTHS = {"laptop": (1280, 860), "phone": (390, 844)}


def main(out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    server = LiveServer(Path(tempfile.mkdtemp())).start()
    try:
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
            for label, (width, height) in WIDTHS.items():
                page = browser.new_context(viewport={"width": width, "height": height}).new_page()

                def shot(name: str) -> None:
                    page.wait_for_load_state()
                    overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
                    if overflow > 0:
                        print(f"{name}-{label}: wider than the window by {overflow}px")
                    page.screenshot(path=str(out / f"{name}-{label}.png"), full_page=True)
                    # Tall phone pages are also cut into screen-sized parts, easier to read.
                    total = page.evaluate("document.documentElement.scrollHeight")
                    for part, top in enumerate(range(0, total, height) if total > height * 1.5 else []):
                        page.screenshot(path=str(out / f"{name}-{label}-part{part + 1}.png"), full_page=True,
                                        clip={"x": 0, "y": top, "width": width, "height": min(height, total - top)})

                page.goto(server.url + "/signup")
                shot("01-signup")
                page.get_by_label("Business name").fill("Corner Bakery")
                page.get_by_label("Email").fill(f"owner-{label}@example.com")
                page.get_by_label("Password").fill("short")
                page.get_by_role("button", name="Create account").click()
                shot("02-signup-error")
                page.get_by_label("Password").fill("a long enough passphrase")
                page.get_by_role("button", name="Create account").click()
                shot("03-home-empty")
                page.get_by_role("link", name="Developer").click()
                shot("04-applications-empty")
                page.get_by_role("button", name="New application").click()
                page.get_by_label("Application name").wait_for()
                shot("05-new-application")
                page.get_by_label("Application name").fill("Web shop")
                page.get_by_role("button", name="Create application").click()
                page.get_by_label("App Secret").wait_for()
                shot("06-application-secret")
                page.get_by_role("button", name="Create API key").click()
                page.get_by_label("Key name").wait_for()
                shot("07-key-form")
                page.get_by_role("button", name="Create key").click()
                page.get_by_text("Enter a key name").wait_for()
                shot("08-key-form-errors")
                page.get_by_label("Key name").fill("Checkout server")
                page.get_by_label("stamps_read").check()
                page.get_by_label("stamps_write").check()
                page.get_by_label("Expires").select_option(label="90 days")
                page.get_by_role("button", name="Create key").click()
                page.get_by_text("created. Copy it now").wait_for()
                shot("09-new-key")
                page.get_by_role("button", name="Roll").first.click()
                page.get_by_label("Old key expires").wait_for()
                shot("10-roll-form")
                page.get_by_role("button", name="Roll key").click()
                page.get_by_text("rolled. Copy the new key now").wait_for()
                shot("11-rolled")
                page.reload()
                shot("12-application-reloaded")
                page.get_by_role("link", name="Developer").click()
                shot("13-applications")
                page.get_by_role("link", name="Home").click()
                shot("14-home")
                page.get_by_role("link", name="Docs", exact=True).click()
                shot("15-docs")
                for path, name in (("/program", "15b-program"), ("/docs/api", "15c-api-docs")):
                    page.goto(server.url + path)  # other areas, in our layout
                    shot(name)
                page.goto(server.url + "/developer/apps/app_doesnotexist0000")
                shot("16-not-found")
                page.get_by_role("button", name="Log out").click()
                page.get_by_role("button", name="Log in").wait_for()
                shot("17-login")
                page.goto(server.url + "/no/such/page")
                shot("18-not-found-logged-out")
                page.context.close()
            browser.close()
    finally:
        server.stop()
    print(f"screenshots in {out}")


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else "/tmp/screens"))
