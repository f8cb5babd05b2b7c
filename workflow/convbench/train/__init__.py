"""The train stage (workflow/rules/train.smk): one model per dataset x architecture x variant x seed,
with augmentation, callbacks, resumable checkpoints and TensorBoard logs; the job then evaluates its
model while it is in memory. Reads the prepared data; writes model.keras, history.csv, train_meta.json."""
