from _bootstrap import start

start(snakemake)
from convbench.config import study_variants
from convbench.datasets import register_custom_datasets, remote_file
from convbench.fetch import fetch_file, imagenet_weights_sources
from convbench.transfer import register_transfer

sm = snakemake
# URLs come from the config here, not from params: a new mirror must not refetch a verified file.
register_custom_datasets(sm.config["custom_datasets"])
if sm.rule == "fetch_weights":
    register_transfer(sm.config["transfer_learning"])
    urls = imagenet_weights_sources(sm.config, study_variants(sm.config))[sm.wildcards.filename][0]
else:
    urls = remote_file(sm.wildcards.dataset, sm.wildcards.filename).urls
fetch_file(list(urls), sm.params.known_hash, sm.output[0])
