from _bootstrap import finish, start

start(snakemake)
from convbench.runtime import configure_tensorflow

sm = snakemake
configure_tensorflow(threads=sm.threads, seed=sm.params.seed)

from convbench.prepared import load_prepared
from convbench.training import make_augmentation
from convbench.visualization import plot_augmentation_preview

plot_augmentation_preview(
    load_prepared(sm.input.data, sm.input.manifest),
    make_augmentation(sm.params.augmentation, sm.params.seed),
    sm.output[0],
    f"Augmentation preview — {sm.wildcards.dataset}",
)
finish()
