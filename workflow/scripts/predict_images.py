from _bootstrap import finish, start

start(snakemake)
from convbench.runtime import configure_tensorflow

sm = snakemake
configure_tensorflow(threads=sm.threads)

from convbench.predict import predict

predict(sm.input.model, [sm.params.images], sm.output[0], top_k=sm.params.top_k, skip_bad=sm.params.skip_bad)
finish()
