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


def suptitle(fig, text, **kwargs):
    """fig.suptitle with each line broken at spaces to fit the figure's width (a character taken as
    0.6 em wide): constrained layout makes room above the axes for a title, not beside them, so a
    longer line would run past the figure's edges."""
    import textwrap

    import matplotlib
    from matplotlib.font_manager import FontProperties

    points = FontProperties(size=kwargs.get("fontsize", matplotlib.rcParams["figure.titlesize"])).get_size_in_points()
    width = max(20, int(fig.get_figwidth() * 72 / (0.6 * points)))
    return fig.suptitle("\n".join(textwrap.fill(line, width) for line in text.split("\n")), **kwargs)


def displayable(image):
    """Any image scaled to [0, 1] for imshow; single-channel images as 2-D."""
    image = np.asarray(image, float)
    image = (image - image.min()) / max(np.ptp(image), 1e-8)
    return image[..., 0] if image.shape[-1] == 1 else image


def png_bytes(fig, colors=256):
    """A matplotlib figure as a palette PNG: `colors` colours chosen for this image (octree), no
    dithering. Plots and heat maps hold few distinct colours, so this looks the same at 2-5x fewer
    bytes than matplotlib's RGBA PNG — what keeps a report of a hundred experiments' figures small."""
    import io

    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from PIL import Image

    # the drawn pixels straight from the canvas: savefig would encode them as a PNG only to decode it here
    canvas = fig.canvas if isinstance(fig.canvas, FigureCanvasAgg) else FigureCanvasAgg(fig)
    canvas.draw()
    rgb = np.asarray(canvas.buffer_rgba())[..., :3]
    image = Image.fromarray(np.ascontiguousarray(rgb)).quantize(colors, method=Image.Quantize.FASTOCTREE,
                                                                dither=Image.Dither.NONE)
    compressed = io.BytesIO()
    image.save(compressed, format="png", optimize=True)
    return compressed.getvalue()
