"""Labels, datasets, training, ONNX export and the model registry."""
