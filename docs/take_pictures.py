"""Take the README's pictures of the report, as a reader sees it in a 1280-px window (headless Chromium).

    snakemake --cores 4 && python docs/take_pictures.py                       # the Quickstart's own study
    python docs/take_pictures.py --variants path/to/tutorial/results/report.html  # also docs/report-variants.png
    python docs/take_pictures.py --tuned path/to/tuned-comparison/results/report.html  # also docs/report-tuned.png

Each picture is the window scrolled to one section of the report; the README shows them as they are.
Needs Debian's chromium and the test extra's Playwright (pip install -e '.[test]').
"""

import argparse
import sys
from pathlib import Path

DOCS = Path(__file__).resolve().parent
sys.path.insert(0, str(DOCS.parent / "tests"))
from browser import CHROMIUM, FLAGS  # noqa: E402  (the browser the report tests use, with the same flags)

WINDOW = {"width": 1280, "height": 900}
# picture -> the heading its window starts at (None: the top of the report)
PICTURES = {
    "report.png": None,
    "report-same-images.png": "Same test images, every model",
    "report-inside.png": "Inside the networks",
}
VARIANTS_PICTURE = ("report-variants.png", "Variants: what each change did")
TUNED_PICTURE = ("report-tuned.png", "Tuned comparison")


def take(report, pictures, out_dir=DOCS):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=FLAGS, headless=True)
        page = browser.new_context(offline=True, viewport=WINDOW).new_page()
        page.goto(Path(report).resolve().as_uri(), wait_until="load")
        for name, heading in pictures.items():
            if heading:
                found = page.locator("h2", has_text=heading).first
                if not found.count():
                    raise SystemExit(f"{report} has no section {heading!r}: is it the study the picture is of?")
                found.evaluate("h => window.scrollTo(0, h.getBoundingClientRect().top + window.scrollY - 8)")
            else:
                page.evaluate("window.scrollTo(0, 0)")
            page.screenshot(path=str(out_dir / name))
            print(f"{out_dir / name}")
        browser.close()


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--report", default="results/report.html", help="the Quickstart study's report")
    parser.add_argument("--variants", help="a report with a Variants section (the tutorial study's)")
    parser.add_argument("--tuned", help="a report with a Tuned comparison section (studies/tuned-comparison.yaml's)")
    args = parser.parse_args(argv)
    take(args.report, PICTURES)
    if args.variants:
        take(args.variants, dict([VARIANTS_PICTURE]))
    if args.tuned:
        take(args.tuned, dict([TUNED_PICTURE]))


if __name__ == "__main__":
    main()
