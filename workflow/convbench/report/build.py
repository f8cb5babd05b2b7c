"""Executing the report notebook with papermill and rendering it to one self-contained HTML file."""

import logging
import os
from pathlib import Path

from ..base.atomic import atomic_path

log = logging.getLogger(__name__)


WORKFLOW = Path(__file__).resolve().parents[2]  # workflow/: the notebook templates and the package root
TEMPLATES = WORKFLOW / "notebooks" / "templates"


def build_report(template, notebook, html, parameters, show_code=False):
    """Execute the template notebook with papermill, then render it to self-contained HTML."""
    import nbformat
    import papermill
    from nbconvert import HTMLExporter

    # The notebook's kernel imports convbench from this workflow even where it is not installed.
    package_root = str(WORKFLOW)
    os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [package_root, os.environ.get("PYTHONPATH")]))
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    with atomic_path(notebook) as executed:
        papermill.execute_notebook(
            str(template), str(executed), parameters=parameters, kernel_name="python3", progress_bar=False,
            log_output=True,
        )
        exporter = HTMLExporter(
            extra_template_basedirs=[str(TEMPLATES)], template_name="convbench", exclude_input=not show_code,
            exclude_input_prompt=True, exclude_output_prompt=True, embed_images=True,
        )
        body, _ = exporter.from_notebook_node(nbformat.read(executed, as_version=4))
        with atomic_path(html) as tmp:
            tmp.write_text(body, encoding="utf-8")
    log.info("report written to %s", html)
