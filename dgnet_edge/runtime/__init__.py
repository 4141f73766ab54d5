"""Runtime backends behind one interface (torch, ONNX Runtime, TensorRT)."""
