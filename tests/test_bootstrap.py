"""The rule scripts' first and last calls (workflow/scripts/_bootstrap.py)."""

import subprocess
import sys

from conftest import PROJECT

SCRIPTS = PROJECT / "workflow" / "scripts"


def test_finish_exits_at_once_with_every_line_written(tmp_path):
    """finish() skips Python's slow shutdown of TensorFlow, but not what the job logged or printed."""
    log = tmp_path / "job.log"
    program = f"""
import logging, sys, atexit
sys.path.insert(0, {str(SCRIPTS)!r})
from _bootstrap import finish
handle = open({str(log)!r}, "a")  # block-buffered, as a log handler's stream may be
logging.basicConfig(stream=handle, level=logging.INFO, format="%(message)s", force=True)
logging.getLogger("convbench").info("last line of the job")
atexit.register(lambda: print("python shut down normally"))
print("printed", flush=False)
finish()
"""
    result = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0
    assert log.read_text() == "last line of the job\n"
    assert result.stdout == "printed\n"  # flushed, and no normal shutdown ran after it


def test_every_script_that_starts_tensorflow_finishes():
    for script in SCRIPTS.glob("*.py"):
        source = script.read_text()
        if "configure_tensorflow" in source:
            assert source.rstrip().endswith("finish()"), f"{script.name} does not end with finish()"
