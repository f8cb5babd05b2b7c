from _bootstrap import start

start(snakemake)
from convbench.config import study_variants
from convbench.catalog import remote_file, resolve_datasets
from convbench.fetch import fetch_file, imagenet_weights_sources

sm = snakemake
# URLs come from the config here, not from params: a new mirror must not refetch a verified file.
if sm.rule == "fetch_weights":
    urls = imagenet_weights_sources(sm.config, study_variants(sm.config))[sm.wildcards.filename][0]
else:
    dataset = resolve_datasets(sm.config["custom_datasets"])[sm.wildcards.dataset]
    urls = remote_file(dataset, sm.wildcards.filename).urls
fetch_file(list(urls), sm.params.known_hash, sm.output[0])
