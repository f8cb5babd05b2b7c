"""Open an HTML file in headless Chromium with the network cut off; report what a reader would see."""

import os
import shutil
from pathlib import Path

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
# Flags a sandboxed root CI needs, and no background traffic to hosts this machine cannot reach.
FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
         "--disable-component-update", "--disable-sync"]


def browser_required():
    """CI sets CONVBENCH_REQUIRE_BROWSER so that a missing Chromium fails instead of skipping."""
    return bool(os.environ.get("CONVBENCH_REQUIRE_BROWSER"))


def inspect_offline(html_path, screenshot):
    """Load the page from file:// with every other request blocked; returns what happened."""
    from playwright.sync_api import sync_playwright

    html_path = Path(html_path).resolve()
    seen = {"blocked": [], "console_errors": [], "page_errors": []}
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=FLAGS, headless=True)
        context = browser.new_context(offline=True, viewport={"width": 1280, "height": 900})
        page = context.new_page()
        page.route("**/*", lambda route: route.continue_() if route.request.url.startswith(("file:", "data:"))
                   else (seen["blocked"].append(route.request.url), route.abort()))
        page.on("console", lambda message: message.type == "error" and seen["console_errors"].append(message.text))
        page.on("pageerror", lambda error: seen["page_errors"].append(str(error)))
        page.goto(html_path.as_uri(), wait_until="load")
        seen["images"] = page.evaluate(
            "Array.from(document.images).map(i => ({alt: i.alt, ok: i.complete && i.naturalWidth > 0}))"
        )
        seen["title"] = page.title()
        page.screenshot(path=str(screenshot), full_page=False)
        # The first table is the leaderboard: it must fit the 1280-px window and sort on a click.
        seen["leaderboard_width"] = page.evaluate("document.querySelector('.jp-RenderedHTMLCommon table').scrollWidth")
        # what the window shows of it: the output area around the table scrolls when the table is wider
        seen["leaderboard_hidden_px"] = page.evaluate(
            "(a => a.scrollWidth - a.clientWidth)(document.querySelector('.jp-RenderedHTMLCommon table').closest('.jp-OutputArea-output'))")
        seen["page_width"] = page.evaluate("document.documentElement.scrollWidth")
        column = "Array.from(document.querySelector('.jp-RenderedHTMLCommon table tbody').rows).map(r => r.cells[1].textContent)"
        seen["architectures_before"] = page.evaluate(column)
        page.click(".jp-RenderedHTMLCommon table thead th:nth-child(2)")  # architecture: ascending
        seen["architectures_sorted"] = page.evaluate(column)
        details = page.locator("details").first
        if details.count():
            details.locator("summary").click()
            seen["details_opened"] = details.evaluate("d => d.open")
        browser.close()
    return seen
