"""convbench: train, evaluate and compare convolutional networks, one Snakemake rule per stage.

The modules map onto the workflow's stages: datasets (fetch, prepare), architectures and
training (train), evaluation (evaluate, summarize), visualization (render) and report (report).
"""

__version__ = "0.1.0"
