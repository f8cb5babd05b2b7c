"""The one table of an experiment's figures: what the evaluate_model job draws for every experiment.

Each entry names the file (figures/<name>.png, and its key in figures.json), the category
`snakemake --report` files it under, and its caption (workflow/report/<name>.rst, shown by
`snakemake --report`). The rule's outputs are made from this table and convbench.evaluate.visualization
draws each entry with the function of the same name in its DRAW table; tests check the three agree.
No heavy imports here: the Snakefile reads this table while it parses.
"""

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Figure:
    name: str
    category: str  # snakemake --report's category

    @property
    def caption(self):
        return f"{self.name}.rst"  # in workflow/report/


FIGURES = (
    Figure("curves", "Training curves"),
    Figure("confusion", "Confusion matrices"),
    Figure("filters", "Learned filters"),
    Figure("feature_maps", "Feature maps"),
    Figure("gradcam", "Grad-CAM"),
    Figure("misclassified", "Misclassified examples"),
    Figure("by_hand", "Convolution by hand"),
)

NAMES = tuple(figure.name for figure in FIGURES)

# Every file evaluate_model writes for one experiment, relative to the experiment's folder: the rule's
# outputs and the training job's staged copy (convbench.evaluate.assessment) are both laid out from it.
EVALUATION_FILES = {
    "metrics": "metrics.json",
    "predictions": "test_predictions.npz",
    "figures": "figures/figures.json",
    "anatomy": "anatomy.json",
    **{figure.name: f"figures/{figure.name}.png" for figure in FIGURES},
}


def evaluation_files(directory):
    """{key: path} of EVALUATION_FILES under `directory`."""
    return {key: Path(directory) / name for key, name in EVALUATION_FILES.items()}
