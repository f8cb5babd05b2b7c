from _bootstrap import start

start(snakemake)
import logging

from pathlib import Path

from convbench.tune.record import choose, choose_asynchronous, read_record
from convbench.tune.search import Plan

sm = snakemake
plan = Plan.from_description(sm.params.search)
if plan.asynchronous:  # the inputs: every lane's last record
    winner = choose_asynchronous(plan, Path(sm.output[0]).parent, sm.output[0], sm.wildcards.dataset,
                                 sm.wildcards.arch, sm.params.baseline)
else:
    winner = choose(plan, read_record(sm.input.last[0])["trials"], sm.output[0], sm.wildcards.dataset,
                    sm.wildcards.arch, sm.params.baseline)
logging.getLogger("convbench").info("chosen: %s, validation accuracy %.4f", winner["variant"], winner["score"])
