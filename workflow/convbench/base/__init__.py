"""The base every stage stands on: the config (defaults, variants, sweeps) and its checks, atomic
files, one-line job errors, devices and TensorFlow's runtime set-up, learning-rate schedules, figure
style and the git commit. It reads config.yaml and the machine; it writes nothing of a study's own."""
