"""The evaluate stage (workflow/rules/evaluate.smk and render.smk's drawing): the forward pass over
prepared data, test metrics and their table, speed per dataset, and every per-experiment figure.
Reads model.keras and the prepared test split; writes metrics.json, test_predictions.npz, anatomy.json,
figures/ and results/cost/."""
