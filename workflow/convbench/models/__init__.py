"""The networks: built-in architectures and their layers, those a study declares in YAML, transfer
bases with their ImageNet weights, BatchNorm on the fused kernel, saving and loading model files, and
a model's anatomy. Used by training, evaluation and deployment; reads only weights files and model.keras."""
