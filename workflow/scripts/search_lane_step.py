from _bootstrap import start

start(snakemake)
import logging

from convbench.tune.record import run_lane_step
from convbench.tune.search import Plan

sm = snakemake
trial = run_lane_step(Plan.from_description(sm.params.search), int(sm.wildcards.lane), int(sm.wildcards.step),
                      sm.output[0], sm.wildcards.dataset, sm.wildcards.arch)
logging.getLogger("convbench").info("lane %s step %s proposes %s", sm.wildcards.lane, sm.wildcards.step,
                                    trial["variant"] if trial else "nothing: the lane ends")
