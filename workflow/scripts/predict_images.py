from _bootstrap import finish, start

start(snakemake)
from convbench.runtime import configure_tensorflow

sm = snakemake
configure_tensorflow(threads=sm.threads)

import logging

from convbench.predict import predict

_, skipped = predict(sm.input.model, [sm.params.images], sm.output[0], top_k=sm.params.top_k,
                     skip_bad=sm.params.skip_bad)
for message in skipped:
    logging.getLogger("convbench.predict").warning("skipped %s", message)
finish()
