"""The report of a 100-experiment study (generated, valid result files: benchmarks/report_scale.py)
reads as one page: every experiment in the tables, galleries folded per compared model, every
figure described and decodable, the leaderboard within a 1280-px window, the page within budget."""

import base64
import importlib.util
import io
import re

import pytest
from conftest import PROJECT

ARCHITECTURES, VARIANTS, SEEDS = 10, 2, 5
BUDGET_MB = 15  # issue 14

pytestmark = pytest.mark.slow  # builds a 100-experiment report with papermill, and reads it in a browser


def load_generator():
    spec = importlib.util.spec_from_file_location("report_scale", PROJECT / "benchmarks" / "report_scale.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def large_study(tmp_path_factory):
    generator = load_generator()
    root = tmp_path_factory.mktemp("large-study")
    experiments, parameters = generator.write_study(root, ARCHITECTURES, VARIANTS, SEEDS)
    generator.build(root, experiments, parameters)
    return root, experiments


def images_of(html):
    return [(re.search(r'alt="([^"]*)"', tag), re.search(r'base64,([^"]+)"', tag))
            for tag in re.findall(r"<img [^>]*>", html)]


def test_every_experiment_is_in_the_report(large_study):
    import pandas as pd

    root, experiments = large_study
    assert len(experiments) == ARCHITECTURES * VARIANTS * SEEDS == 100
    html = (root / "results/report.html").read_text()
    summary = pd.read_csv(root / "results/summary.csv")
    assert len(summary) == 100
    full_table = html[html.index("One row per dataset × architecture × variant × seed"):]
    rows = re.findall(r"<tr>\s*<td[^>]*>digits</td>\s*<td[^>]*>(arch\d\d)</td>\s*<td[^>]*>([^<]+)</td>\s*<td[^>]*>(\d+)</td>",
                      full_table)
    assert {(arch, variant, int(seed)) for arch, variant, seed in rows} == set(
        zip(summary["architecture"], summary["variant"], summary["seed"]))


def test_a_reproduced_recipe_is_named_first_with_its_deviations_linked(large_study):
    root, _ = large_study
    html = (root / "results/report.html").read_text()
    line = re.search(r"<p><b>Reproduces</b>(.*?)</p>", html, flags=re.S).group(1)
    assert "a published recipe &lt;with markup&gt;" in line and 'href="#recipe-deviations">1 stated deviation</a>' in line
    assert 'href="../README.md#the-tutorial-exactly"' in line
    deviations = html[html.index('id="recipe-deviations"'):]
    assert "offline &amp; small" in deviations[:deviations.index("</details>")]
    assert html.index("<b>Reproduces</b>") < html.index("experiments</strong>")  # before the headline numbers


def test_galleries_are_folded_one_block_per_compared_model(large_study):
    from convbench.evaluate.figures import NAMES

    root, _ = large_study
    html = (root / "results/report.html").read_text()
    models = ARCHITECTURES * VARIANTS
    blocks = [block for block in re.findall(r"<details([^>]*)>", html) if "recipe-deviations" not in block]
    # a gallery block per model and figure, and an anatomy block per model; all closed
    assert len(blocks) == models * (len(NAMES) + 1)
    assert not any("open" in attributes for attributes in blocks)
    # the other seeds reachable from each block, the median seed shown
    assert html.count("Other seeds:") == models * len(NAMES)


def test_every_figure_is_described_decodes_and_the_page_fits_the_budget(large_study):
    from PIL import Image

    root, _ = large_study
    html = (root / "results/report.html").read_text()
    images = images_of(html)
    assert len(images) >= ARCHITECTURES * VARIANTS * 7
    for alt, data in images:
        assert alt and alt.group(1).strip() and "No description" not in alt.group(1)
        Image.open(io.BytesIO(base64.b64decode(data.group(1)))).verify()
    size_mb = (root / "results/report.html").stat().st_size / 1e6
    assert size_mb <= BUDGET_MB, f"report.html is {size_mb:.1f} MB"
    # the comparisons across models: one row per model on the same test images
    assert "Same test images, every model" in html
    descriptions = [alt.group(1) for alt, _ in images]
    assert any("most models get wrong" in text for text in descriptions)
    assert any("Grad-CAM of every model on the same test images" in text for text in descriptions)


def test_large_report_reads_in_a_1280_px_browser(large_study, tmp_path):
    from browser import CHROMIUM, browser_required, inspect_offline

    if not CHROMIUM:
        if browser_required():
            pytest.fail("Chromium is required here (CONVBENCH_REQUIRE_BROWSER) but not installed")
        pytest.skip("no Chromium on this machine (apt-get install chromium)")
    root, _ = large_study
    seen = inspect_offline(root / "results/report.html", tmp_path / "report.png")
    assert seen["blocked"] == [] and seen["console_errors"] == [] and seen["page_errors"] == []
    assert all(image["ok"] for image in seen["images"]), "broken images"
    assert seen["page_width"] == 1280 and seen["leaderboard_hidden_px"] <= 0, "the leaderboard scrolls sideways"
    assert seen["architectures_sorted"] == sorted(seen["architectures_before"])
    assert seen["details_opened"] is True
