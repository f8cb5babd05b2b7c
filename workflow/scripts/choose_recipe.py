from _bootstrap import start

start(snakemake)
import logging

from convbench.tune.record import choose
from convbench.tune.search import Plan

sm = snakemake
winner = choose(Plan.from_description(sm.params.search), sm.input.last[0], sm.output[0], sm.wildcards.dataset,
                sm.wildcards.arch, sm.params.baseline)
logging.getLogger("convbench").info("chosen: %s, validation accuracy %.4f", winner["variant"], winner["score"])
