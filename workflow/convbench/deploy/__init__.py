"""Using what was trained (workflow/rules/export.smk, predict.smk, track.smk): exported formats checked
against the Keras model, predictions on new images, and MLflow runs. Reads model.keras and the
prepared manifest; writes export/, results/predictions/ and MLflow records."""
