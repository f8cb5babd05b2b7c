"""One look for every figure, shared by the render stage and the report (no TensorFlow import here)."""

import numpy as np

STYLE = {
    "figure.dpi": 100,
    "savefig.dpi": 100,
    "axes.grid": True,
    "grid.alpha": 0.3,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "font.size": 10,
}


def displayable(image):
    """Any image scaled to [0, 1] for imshow; single-channel images as 2-D."""
    image = np.asarray(image, float)
    image = (image - image.min()) / max(np.ptp(image), 1e-8)
    return image[..., 0] if image.shape[-1] == 1 else image
