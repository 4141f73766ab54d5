"""INT8 calibration: calibration sets, ranges, Q/DQ models, TensorRT caches."""
