"""authvision_train: retraining, ONNX export and quantisation (needs the ``[train]`` extra: torch)."""
