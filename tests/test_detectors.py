"""Camera app detectors: YOLO output layouts on small ONNX graphs built here, HOG, motion, public det.txt."""

from __future__ import annotations

import cv2
import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from dgnet_edge.apps.camera.live.detectors import (
    HogDetector,
    Fit,
    MotionDetector,
    letterbox,
    open_detector,
    output_layout,
)
from dgnet_edge.apps.camera.live.sources import Frame
from dgnet_edge.boxes import nms
from dgnet_edge.errors import DetectorError, UsageError

H, W = 480, 640  # frames; the fixed-size models below take 320x320, so scale 0.5, 40 px bars top and bottom
FRAME_BOX = [280.0, 160.0, 360.0, 320.0]  # where the box at (cx 160, cy 160, w 40, h 80) of the model input lands


def frame(image=None, camera="cam1", index=1):
    image = np.zeros((H, W, 3), np.uint8) if image is None else image
    return Frame(camera, index, image, 0.0)


def yolo_onnx(path, output: np.ndarray, input_hw=(320, 320), score_at=None):
    """A graph whose output is ``output`` plus, at ``score_at``, the mean of the input's first (R) channel.

    The added term makes the output depend on the input as a real detector's does and lets a test
    check the preprocessing (letterbox padding, RGB order, 0..1 scaling) through a score.
    """
    weights = np.zeros((3, output.size), np.float32)
    if score_at is not None:
        weights[0, np.ravel_multi_index(score_at, output.shape)] = 1.0
    h, w = input_hw
    graph = helper.make_graph(
        [
            helper.make_node("ReduceMean", ["images"], ["mean"], axes=[2, 3], keepdims=0),
            helper.make_node("MatMul", ["mean", "weights"], ["flat"]),
            helper.make_node("Reshape", ["flat", "shape"], ["picked"]),
            helper.make_node("Add", ["picked", "constant"], ["output0"]),
        ],
        "yolo_stand_in",
        [helper.make_tensor_value_info("images", TensorProto.FLOAT, [1, 3, h, w])],
        [helper.make_tensor_value_info("output0", TensorProto.FLOAT, list(output.shape))],
        [numpy_helper.from_array(weights, "weights"), numpy_helper.from_array(np.array(output.shape, np.int64), "shape"),
         numpy_helper.from_array(output.astype(np.float32), "constant")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path


# boxes in model-input pixels (cx, cy, w, h), class, class score, objectness (YOLOv5 only)
ROWS = [
    ((160, 160, 40, 80), 0, 0.90, 1.0),  # person: kept
    ((164, 160, 40, 80), 0, 0.60, 1.0),  # overlaps the first (IoU 0.82): NMS drops it
    ((250, 100, 40, 80), 2, 0.95, 1.0),  # a car: the class filter drops it
    ((60, 250, 20, 40), 0, 0.10, 1.0),  # below conf
    ((60, 100, 30, 60), 0, 0.80, 0.5),  # person; YOLOv5 score 0.8 * 0.5
]


def to_frame(cx, cy, w, h):
    return [(cx - w / 2) * 2, (cy - h / 2 - 40) * 2, (cx + w / 2) * 2, (cy + h / 2 - 40) * 2]


def yolov8_output(n=100, classes=80):
    out = np.zeros((1, 4 + classes, n), np.float32)
    for j, (box, cls, score, _) in enumerate(ROWS):
        out[0, :4, j] = box
        out[0, 4 + cls, j] = score
    return out


def yolov5_output(n=100, classes=80):
    out = np.zeros((1, n, 5 + classes), np.float32)
    for j, (box, cls, score, obj) in enumerate(ROWS):
        out[0, j, :4] = box
        out[0, j, 4] = obj
        out[0, j, 5 + cls] = score
    return out


def end2end_output(n=300):
    out = np.zeros((1, n, 6), np.float32)
    for j, ((cx, cy, w, h), cls, score, _) in enumerate(ROWS):
        out[0, j] = [cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2, score, cls]
    return out


# -- letterbox and NMS -------------------------------------------------------------------------------
def test_letterbox_keeps_aspect_pads_114_and_inverts():
    image = np.full((H, W, 3), 7, np.uint8)
    canvas, fit = letterbox(image, (320, 320))
    assert canvas.shape == (320, 320, 3) and fit == Fit(0.5, 0.5, 0, 40)
    assert (canvas[:40] == 114).all() and (canvas[280:] == 114).all() and (canvas[40:280] == 7).all()
    boxes = np.array([[140, 120, 180, 200], [-10, 0, 400, 330]], np.float32)
    back = fit.to_frame(boxes, W, H)
    np.testing.assert_allclose(back, [FRAME_BOX, [0, 0, W, H]])  # the second one is clipped to the frame

    canvas, fit = letterbox(image, (320, 320), stride=32)  # dynamic models: pad only to the stride
    assert canvas.shape == (256, 320, 3) and fit == Fit(0.5, 0.5, 0, 8)
    canvas, fit = letterbox(np.zeros((100, 50, 3), np.uint8), (64, 64))
    assert canvas.shape == (64, 64, 3) and fit.left == 16 and fit.top == 0


def test_nms_keeps_the_best_of_each_overlapping_group():
    boxes = np.array([[0, 0, 10, 10], [1, 0, 11, 10], [20, 20, 30, 30], [0, 0, 10, 10.5]], np.float32)
    scores = np.array([0.5, 0.9, 0.3, 0.4], np.float32)
    assert nms(boxes, scores, 0.5).tolist() == [1, 2]
    assert nms(boxes, scores, 0.96).tolist() == [1, 0, 3, 2]  # box 3 vs box 0: IoU 0.952
    assert nms(boxes[:0], scores[:0], 0.5).tolist() == []


@pytest.mark.parametrize("shape, layout", [
    ((1, 84, 8400), "yolov8"), ((1, 6, 8400), "yolov8"), ((1, 25200, 85), "yolov5"), ((1, 25200, 6), "yolov5"),
    ((1, 300, 6), "end2end"), ((1, 2, 3, 4), None), ((2, 84, 8400), None), ((1, 3, 3), None),
])
def test_output_layout_from_shape(shape, layout):
    assert output_layout(shape) == layout


# -- yolo on ONNX graphs ---------------------------------------------------------------------------
def test_yolov8_layout_decodes_filters_and_suppresses(tmp_path):
    detector = open_detector("yolo", str(yolo_onnx(tmp_path / "v8.onnx", yolov8_output())))
    assert detector.layout == "yolov8" and detector.input_size == (320, 320)
    dets = detector.detect(frame())
    np.testing.assert_allclose(dets.boxes, [FRAME_BOX, to_frame(60, 100, 30, 60)], atol=1e-4)
    np.testing.assert_allclose(dets.scores, [0.9, 0.8], atol=1e-6)
    assert dets.boxes.dtype == np.float32 and dets.scores.dtype == np.float32


def test_nms_is_per_class_when_several_classes_are_kept(tmp_path):
    output = yolov8_output()
    output[0, :4, 2] = (161, 160, 40, 80)  # the car now sits on the first person
    path = yolo_onnx(tmp_path / "v8.onnx", output)
    assert len(open_detector("yolo", str(path)).detect(frame())) == 2
    dets = open_detector("yolo", str(path), classes=(0, 2)).detect(frame())
    np.testing.assert_allclose(dets.scores, [0.95, 0.9, 0.8], atol=1e-6)  # the car does not suppress the person


def test_yolov5_layout_multiplies_objectness(tmp_path):
    detector = open_detector("yolo", str(yolo_onnx(tmp_path / "v5.onnx", yolov5_output())), conf=0.3)
    assert detector.layout == "yolov5"
    dets = detector.detect(frame())
    np.testing.assert_allclose(dets.boxes, [FRAME_BOX, to_frame(60, 100, 30, 60)], atol=1e-4)
    np.testing.assert_allclose(dets.scores, [0.9, 0.4], atol=1e-6)
    assert len(open_detector("yolo", str(tmp_path / "v5.onnx"), conf=0.5).detect(frame())) == 1


def test_end2end_layout_needs_no_nms(tmp_path):
    detector = open_detector("yolo", str(yolo_onnx(tmp_path / "e2e.onnx", end2end_output())))
    assert detector.layout == "end2end"
    dets = detector.detect(frame())
    # the overlapping pair is the model's own business: both stay; the car and the weak one go
    np.testing.assert_allclose(dets.boxes, [FRAME_BOX, to_frame(60, 100, 30, 60), to_frame(164, 160, 40, 80)], atol=1e-4)
    np.testing.assert_allclose(dets.scores, [0.9, 0.8, 0.6], atol=1e-6)
    assert len(open_detector("yolo", str(tmp_path / "e2e.onnx"), classes=(2,)).detect(frame())) == 1


def test_preprocessing_is_rgb_in_0_1_with_grey_bars(tmp_path):
    output = yolov8_output()
    output[0, 4, 0] = 0.0  # the first box's person score becomes the mean of the model's R channel
    detector = open_detector("yolo", str(yolo_onnx(tmp_path / "probe.onnx", output, score_at=(0, 4, 0))))
    red = np.zeros((H, W, 3), np.uint8)
    red[..., 2] = 255  # BGR
    dets = detector.detect(frame(red))
    expected = (240 * 1.0 + 80 * 114 / 255) / 320  # picture rows at 1.0, letterbox bars at 114/255
    assert dets.scores[0] == pytest.approx(expected, abs=1e-3)
    np.testing.assert_allclose(dets.boxes[0], FRAME_BOX, atol=1e-4)
    blue = np.zeros((H, W, 3), np.uint8)
    blue[..., 0] = 255
    # blue in BGR is no R at all: the probe box falls under conf (0.11), so its NMS victim comes back
    np.testing.assert_allclose(detector.detect(frame(blue)).scores, [0.8, 0.6], atol=1e-6)


def test_dynamic_input_letterboxes_to_the_stride(tmp_path):
    output = yolov8_output()
    output[0, 1, 0] = 128  # centre y in a 320x256 canvas with 8 px bars: the same frame box
    path = yolo_onnx(tmp_path / "dyn.onnx", output, input_hw=("h", "w"))
    detector = open_detector("yolo", str(path), size=320)
    assert detector.input_size == (320, 320) and detector.stride == 32
    dets = detector.detect(frame())
    np.testing.assert_allclose(dets.boxes[0], FRAME_BOX, atol=1e-4)


def test_bad_detector_files_are_one_line_errors(tmp_path):
    def error(match, *args, **kw):
        with pytest.raises(DetectorError, match=match) as info:
            open_detector(*args, **kw)
        assert "\n" not in str(info.value)

    error("nope.onnx: detector model not found", "yolo", str(tmp_path / "nope.onnx"))
    (tmp_path / "junk.onnx").write_bytes(b"not a protobuf at all" * 10)
    error("junk.onnx: not a readable ONNX model", "yolo", str(tmp_path / "junk.onnx"))
    odd = yolo_onnx(tmp_path / "odd.onnx", np.zeros((1, 2, 3, 4), np.float32))
    error(r"odd.onnx: unknown detector output layout \(1, 2, 3, 4\); expected YOLOv5", "yolo", str(odd))
    (tmp_path / "model.engine").write_bytes(b"\0" * 64)
    try:
        import tensorrt  # noqa: F401
    except ImportError:
        error("model.engine: cannot run this TensorRT engine here .*TensorRT: not installed.*use the detector's .onnx",
              "yolo", str(tmp_path / "model.engine"))


def test_open_detector_checks_kind_argument_and_options(tmp_path):
    with pytest.raises(UsageError, match="detector 'ssd': expected one of ssdlite, yolo, hog, motion, public"):
        open_detector("ssd")
    with pytest.raises(UsageError, match="detector yolo needs an exported model file"):
        open_detector("yolo")
    with pytest.raises(UsageError, match="detector hog takes no file"):
        open_detector("hog", "x.onnx")
    with pytest.raises(UsageError, match="unknown option.*confidence.*it takes downscale"):
        open_detector("hog", confidence=0.5)
    with pytest.raises(UsageError, match="layout 'v7'"):
        open_detector("yolo", str(yolo_onnx(tmp_path / "v8.onnx", yolov8_output())), layout="v7")


# -- hog ---------------------------------------------------------------------------------------------
def silhouette(image, x, y, height, colour=(40, 40, 40)):
    """A dark standing figure (head, torso, legs, arms) ``height`` px tall from (x, y); returns its box."""
    u = height / 8.0
    cx = int(x + 2 * u)
    cv2.circle(image, (cx, int(y + 0.6 * u)), int(0.55 * u), colour, -1)
    cv2.ellipse(image, (cx, int(y + 2.6 * u)), (int(0.95 * u), int(1.5 * u)), 0, 0, 360, colour, -1)
    legs = [(-0.9, 3.8), (0.9, 3.8), (0.7, 8), (0.2, 8), (0, 5), (-0.2, 8), (-0.7, 8)]
    cv2.fillPoly(image, [np.array([[cx + int(a * u), int(y + b * u)] for a, b in legs], np.int32)], colour)
    for side in (-1, 1):
        cv2.line(image, (cx + side * int(0.9 * u), int(y + 1.6 * u)), (cx + side * int(1.3 * u), int(y + 4.4 * u)),
                 colour, max(2, int(0.35 * u)))
    return np.array([cx - 1.3 * u, y, cx + 1.3 * u, y + height], np.float32)


def iou(a, b):
    w = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    h = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = w * h
    return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)


def test_hog_finds_a_standing_figure_at_full_and_half_size():
    image = np.full((H, W, 3), 200, np.uint8)
    truth = silhouette(image, 300, 100, 260)
    for detector in (HogDetector(), HogDetector(downscale=2.0)):
        dets = detector.detect(frame(image))
        assert len(dets) == 1, detector.downscale
        assert iou(dets.boxes[0], truth) > 0.35 and 0.5 < dets.scores[0] <= 1.0
        centre = (truth[:2] + truth[2:]) / 2
        assert dets.boxes[0, 0] < centre[0] < dets.boxes[0, 2] and dets.boxes[0, 1] < centre[1] < dets.boxes[0, 3]
    assert len(HogDetector().detect(frame(np.full((H, W, 3), 200, np.uint8)))) == 0


# -- motion ------------------------------------------------------------------------------------------
def test_motion_boxes_a_walking_person_and_ignores_other_shapes():
    rng = np.random.default_rng(1)
    background = cv2.GaussianBlur(rng.integers(60, 190, (H, W, 3), np.uint8), (0, 0), 3)
    detector = MotionDetector(warmup=10)
    for i in range(40):
        image = np.clip(background.astype(np.int16) + rng.integers(-3, 4, (H, W, 1)), 0, 255).astype(np.uint8)
        person = None
        if i >= 20:
            x = 100 + 12 * (i - 20)
            person = np.array([x, 200, x + 44, 320], np.float32)  # 44 x 120: person-shaped
            cv2.rectangle(image, (x, 200), (x + 43, 319), (20, 30, 220), -1)
            cv2.rectangle(image, (500 - 8 * (i - 20), 60), (500 - 8 * (i - 20) + 139, 99), (230, 230, 230), -1)  # wide
            cv2.rectangle(image, (30, 400 + (i % 3)), (35, 405 + (i % 3)), (0, 255, 0), -1)  # tiny
        dets = detector.detect(frame(image, index=i + 1))
        if i < 10:
            assert len(dets) == 0  # warm-up: learning the background
    assert len(dets) == 1
    assert iou(dets.boxes[0], person) > 0.7 and 0.6 < dets.scores[0] <= 1.0
    # each camera has its own background model: a new one starts by learning
    assert len(detector.detect(frame(image, camera="cam2"))) == 0


# -- public ------------------------------------------------------------------------------------------
def write_det(folder, lines):
    (folder / "det").mkdir(parents=True)
    (folder / "det" / "det.txt").write_text("".join(line + "\n" for line in lines))


def test_public_detections_by_camera_and_frame(tmp_path):
    write_det(tmp_path / "cam1", ["1,-1,10,20,30,60,0.9,-1,-1,-1", "2,-1,11,21,30,60,0.8,-1,-1,-1", "2,-1,100,50,20,40,0.2,-1,-1,-1"])
    write_det(tmp_path / "cam2", ["2,-1,5,5,10,20,0.7,-1,-1,-1"])
    detector = open_detector("public", str(tmp_path))
    dets = detector.detect(frame(camera="cam1", index=2))
    np.testing.assert_allclose(dets.boxes, [[11, 21, 41, 81], [100, 50, 120, 90]])
    np.testing.assert_allclose(dets.scores, [0.8, 0.2])
    assert len(detector.detect(frame(camera="cam1", index=3))) == 0
    np.testing.assert_allclose(detector.detect(frame(camera="cam2", index=2)).boxes, [[5, 5, 15, 25]])
    assert len(open_detector("public", str(tmp_path), min_score=0.5).detect(frame(camera="cam1", index=2))) == 1
    single = open_detector("public", str(tmp_path / "cam2"))  # a camera folder serves whatever camera it is given
    np.testing.assert_allclose(single.detect(frame(camera="door", index=2)).boxes, [[5, 5, 15, 25]])
    with pytest.raises(DetectorError, match="cam3/det/det.txt: no public detections for camera 'cam3'"):
        detector.detect(frame(camera="cam3"))


def test_public_detector_errors(tmp_path):
    with pytest.raises(DetectorError, match="no such folder"):
        open_detector("public", str(tmp_path / "missing"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(DetectorError, match="no det/det.txt here nor in its camera folders"):
        open_detector("public", str(tmp_path / "empty"))
    write_det(tmp_path / "bad" / "cam1", ["1,-1,10,20,30,60,0.9,-1,-1,-1", "2,-1,10,oops,30,60,0.9"])
    detector = open_detector("public", str(tmp_path / "bad"))
    with pytest.raises(DetectorError, match=r"cam1/det/det.txt:2: not a number"):
        detector.detect(frame())
