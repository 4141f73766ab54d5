"""The model compiler: PyTorch checkpoints to ONNX and TensorRT engines."""
