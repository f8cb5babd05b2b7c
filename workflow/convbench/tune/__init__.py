"""The tune stage (issue #30, in progress): searching each architecture's training settings under one
budget. Here so far: the search space and its distributions, the trials each method proposes (Sobol
random, grid, Optuna's TPE) and the successive-halving schedule, as pure functions of the config, the
search seed and the validation scores. The rules that run a search are not written yet; no config
key reaches this code."""
