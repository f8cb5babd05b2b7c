"""Building blocks of the report page: figures and image files as inline <img> tags, and the grid of
small multiples the curve, variant and sweep plots share."""

import base64
import html
from pathlib import Path

OVERLAY_LIMIT = 6  # more compared models than this: one panel each (a 12-line legend covers the plot)
PANEL_COLUMNS = 4  # small multiples wrap into rows of this many panels


def panel_grid(count, width, height, columns=PANEL_COLUMNS, **options):
    """(figure, rows × columns array of axes) for `count` panels of width × height inches, in rows of
    at most `columns`; the unused panels of the last row hidden. Call inside the plot's rc_context."""
    import matplotlib.pyplot as plt

    columns = max(1, min(count, columns))
    rows = -(-count // columns)
    fig, axes = plt.subplots(rows, columns, figsize=(width * columns, height * rows + 0.5), squeeze=False,
                             layout="constrained", **options)
    for ax in axes.flat[count:]:
        ax.set_visible(False)
    return fig, axes


def figure_tag(fig, alt):
    """A matplotlib figure as an inline PNG <img> with a description (plt.show() leaves the
    image without one, which nbconvert fills with "No description has been provided")."""
    import matplotlib.pyplot as plt

    from ..base.style import png_bytes

    data = base64.b64encode(png_bytes(fig)).decode()
    plt.close(fig)
    return f'<img src="data:image/png;base64,{data}" alt="{html.escape(alt)}" style="max-width:100%">'


def image_tag(path, alt=None):
    """An <img> with the PNG inlined (so the HTML needs no other file), shown at the size it was drawn."""
    data = base64.b64encode(Path(path).read_bytes()).decode()
    return f'<img src="data:image/png;base64,{data}" alt="{html.escape(alt or Path(path).name)}">'
