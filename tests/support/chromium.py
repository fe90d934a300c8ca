"""Debian's headless Chromium for the Playwright tests (never `playwright install`), the window
sizes pages are checked and photographed at, and axe-core's accessibility check."""

from importlib import resources
from pathlib import Path

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
DESKTOP = {"width": 1280, "height": 860}
PHONE = {"width": 390, "height": 844}
SCREENSHOT_DIR = Path(__file__).resolve().parent.parent.parent / "docs" / "screenshots"


def launch(playwright):
    """Start the headless Chromium."""
    return playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)


def axe_violations(page) -> list[dict]:
    """Run axe-core in the page; return its serious and critical violations."""
    source = resources.files("axe_playwright_python").joinpath("axe.min.js").read_text()
    # evaluate() runs outside the page's Content Security Policy, unlike an injected <script>.
    page.evaluate(source)
    result = page.evaluate("axe.run(document, {resultTypes: ['violations']})")
    return [
        {"rule": v["id"], "impact": v["impact"], "help": v["help"],
         "nodes": [n["target"] for n in v["nodes"]][:5]}
        for v in result["violations"]
        if v["impact"] in ("serious", "critical")
    ]
