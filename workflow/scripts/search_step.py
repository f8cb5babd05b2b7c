from _bootstrap import start

start(snakemake)
import logging

from convbench.tune.record import run_step
from convbench.tune.search import Plan

sm = snakemake
step = int(sm.wildcards.step)
previous = sm.input.previous[0] if step else None
new = run_step(Plan.from_description(sm.params.search), step, previous, sm.output[0], sm.wildcards.dataset,
               sm.wildcards.arch, earlier_repeats=list(sm.input.earlier_repeats))
logging.getLogger("convbench").info("step %d proposes %s", step, ", ".join(trial["variant"] for trial in new))
