"""INT8 calibration: calibration sets, ranges, Q/DQ models, TensorRT caches.

One calibration pass over a camera-stratified sample of images gives per-tensor ranges
(``calibration.json``); every INT8 artifact of an export folder is made from those ranges:

    sampling      which images calibrate, batched as at run time
    collect       the pass: every activation of the fp32 graph histogrammed, batch by batch
    histogram     running |x| histograms and the entropy / percentile / min-max ranges
    ranges        per-tensor ranges and the calibration.json format
    qdq           the TensorRT Q/DQ model and the ONNX Runtime CPU model
    trt_cache     TensorRT calibration caches (implicit INT8, TensorRT 8.5-10.x)
    pipeline      all of the above on an export folder (the `dgnet-edge export --int8` hook)
    accuracy      fp32 vs INT8 retrieval scores and feature cosine (`dgnet-edge calib check`)
    sensitivity   per-layer cost of quantization (`dgnet-edge calib sensitivity`)
    tensorrt_calibrator   TensorRT's calibrator, reading the caches on the device
"""
