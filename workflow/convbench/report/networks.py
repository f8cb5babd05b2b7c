"""Inside the networks: each architecture's anatomy (blocks, receptive field) and the architectures table."""

import html
from pathlib import Path

import pandas as pd

from ..base.atomic import read_json
from .galleries import representatives


def representative_anatomies(summary):
    """(experiment, its anatomy.json) of each dataset's compared models' representative seeds; models
    evaluated before anatomy.json existed are left out."""
    for experiment, _ in representatives(summary):
        path = Path(experiment.experiment_dir) / "anatomy.json"
        if path.exists():
            yield experiment, read_json(path)


def anatomy_blocks(anatomies):
    """Per dataset and compared model (its representative seed): the layer table with output sizes,
    parameters and receptive fields, the output-size arithmetic of the first layers, and how far the
    first convolution by hand lies from the layer (anatomy.json, written by the evaluate job);
    `anatomies`: representative_anatomies' pairs."""
    blocks = []
    for experiment, anatomy in anatomies:
        layers = pd.DataFrame(anatomy["layers"])
        spatial = layers.dropna(subset=["receptive_field"])
        field = int(spatial["receptive_field"].iloc[-1]) if len(spatial) else None
        by_hand = anatomy["first_conv"]
        table = layers[["layer", "type", "output", "parameters", "receptive_field", "jump"]].rename(
            columns={"receptive_field": "receptive field (px)", "jump": "jump (px)"})
        arithmetic = "".join(f"<li><code>{html.escape(line)}</code></li>" for line in anatomy["size_arithmetic"])
        blocks.append(
            f"<details><summary><b>{experiment.model}</b> on {experiment.dataset}: {len(layers)} layers, "
            f"{int(layers['parameters'].sum()):,} parameters"
            + (f", receptive field {field} px (input {anatomy['input']})" if field else "")
            + f"; first convolution by hand: |Δ| ≤ {by_hand['max_abs_difference']:.1e} ({by_hand['precision']})</summary>"
            f"<p>Output size of the first window layers:</p><ul>{arithmetic}</ul>"
            + table.to_html(index=False, na_rep="–", float_format=lambda value: f"{value:,.0f}", classes="anatomy")
            + "</details>")
    return "\n".join(blocks)


DEPTH_RULE = ("Depth: the layers with weights (convolutions, dense) on the longest path from input to output, "
              "as He et al. count ResNet-50's 50 and Szegedy et al. GoogLeNet's 22; in brackets with pooling too, "
              "as LeNet-5's 7 counts its subsampling layers. Shortcut projections and normalisation are not counted. "
              "The tutorial's column gives its table's name, year and layers for the architecture.")


def tutorial_row(architecture):
    """The tutorial's name, year and layers for a built-in architecture ("" for others)."""
    from ..models.famous import TUTORIAL_TABLE

    if architecture not in TUTORIAL_TABLE:
        return ""
    name, year, layers = TUTORIAL_TABLE[architecture]
    return f"{name}, {year}" + (f", {layers} layers" if layers else "")


def depth_text(rows):
    """Our depth by DEPTH_RULE from an anatomy's layer rows; "–" for anatomies made before it was counted."""
    last = rows[-1] if rows else {}
    if "depth" not in last:
        return "–"
    return f"{last['depth']} ({last['depth_with_pooling']} with pooling)"


def architectures_table(anatomies, board):
    """The famous-architectures table: per architecture trained in the study, what it is, its key
    idea, its depth (DEPTH_RULE) beside the tutorial's row, and parameters from its anatomy, next to what
    this study measured (mean test accuracy and latency per dataset from the leaderboard); `anatomies`:
    representative_anatomies' pairs."""
    rows = []
    for experiment, anatomy in anatomies:
        layers = pd.DataFrame(anatomy["layers"])
        measured = board[(board["dataset"] == experiment.dataset) & (board["architecture"] == experiment.architecture)
                         & (board["variant"].astype(str) == str(experiment.variant))].iloc[0]
        rows.append({"architecture": experiment.model, "dataset": experiment.dataset,
                     "what it is": anatomy.get("about", {}).get("description", ""),
                     "key idea": anatomy.get("about", {}).get("idea", ""),
                     "depth": depth_text(anatomy["layers"]), "the tutorial's row": tutorial_row(experiment.architecture),
                     "parameters": int(layers["parameters"].sum()),
                     "test accuracy (mean)": measured["accuracy_mean"], "latency (ms, batch 1)": measured["latency_ms"]})
    table = pd.DataFrame(rows)
    if table.empty:
        return ""
    return (table.style.format({"parameters": "{:,}", "test accuracy (mean)": "{:.2%}", "latency (ms, batch 1)": "{:.2f}"},
                               na_rep="–").hide(axis="index")
            .set_properties(subset=["what it is", "key idea"], **{"text-align": "left"}).to_html()
            + f"<p><small>{DEPTH_RULE}</small></p>")
