"""The tune stage: searching each architecture's training settings under one budget (config `search`).

The search space and its distributions (space), the trials each method proposes (proposals: Sobol random,
grid, Optuna's TPE), the successive-halving schedule (halving), a search as a chain of steps (search), the
record each step writes (record) and the config's checks (checks). Reads the trials' train_meta.json and
history.csv (their validation accuracy, never the test split); writes results/search/<dataset>/<arch>/.
The rules are in workflow/rules/tune.smk; each trial is trained by train_model as an ordinary experiment.
"""
