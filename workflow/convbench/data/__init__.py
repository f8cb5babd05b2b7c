"""The datasets stage (workflow/rules/datasets.smk): what each dataset is (catalog, file formats),
fetching its raw files with their hashes checked, and preparing them into uint8 shards per input size.
Reads resources/datasets/ or image folders; writes results/prepared/ (the shards and their manifest),
which every later stage reads through convbench.data.prepared."""
