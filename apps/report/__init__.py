"""`dgnet-edge report`: the accuracy-vs-latency report users choose a precision and backend from.

Every (backend, precision) row of an export — torch fp32 eager from the source checkpoint, ONNX
Runtime fp32/fp16/int8-cpu/int8-qdq, TensorRT fp32/fp16/int8 — is measured in its own process
(:mod:`~dgnet_edge.apps.report.worker`) on the same query/gallery set: accuracy, latency per batch
size, peak memory, start-up time and generator throughput. A roofline
(:mod:`~dgnet_edge.apps.report.roofline`, :mod:`~dgnet_edge.apps.report.macs`) says how far each row
is from the machine's matrix-multiply peak. :mod:`~dgnet_edge.apps.report.pipeline` runs it all
and writes report.json, report.md, report.html and pareto.png.
"""
