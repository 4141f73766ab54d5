"""Person detectors for the camera app: ``ssdlite`` (a TensorFlow SSDLite MobileNetV2 person
detector converted to ONNX once by ``dgnet-edge detector fetch ssdlite``), ``yolo`` (exported ONNX
or TensorRT models), ``hog`` (OpenCV's pretrained people detector), ``motion`` (background
subtraction) and ``public`` (MOTChallenge det.txt, as trackers are benchmarked).

Every detector takes a :class:`~dgnet_edge.apps.camera.live.sources.Frame` (BGR) and returns
:class:`~dgnet_edge.apps.camera.live.detections.Detections` in frame pixels. Detectors that keep
state per camera (``motion``'s background model, ``public``'s files) key it by ``frame.camera``,
so one detector serves every camera.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from dgnet_edge.apps.camera.live.detections import Detections
from dgnet_edge.apps.camera.live.sources import Frame, import_cv2
from dgnet_edge.boxes import clip_boxes, cxcywh_to_xyxy, nms, tlwh_to_xyxy
from dgnet_edge.data.video.mot import read_mot
from dgnet_edge.errors import BackendUnavailableError, DatasetError, DetectorError, UsageError
from dgnet_edge.runtime.select import ENGINE_SUFFIXES, open_file_runner

log = logging.getLogger(__name__)

PERSON = 0  # COCO class id of "person" in Ultralytics' exports
YOLO_LAYOUTS = ("yolov5", "yolov8", "end2end")
RESIZE_MODES = ("letterbox", "stretch")
END2END_MAX_ROWS = 1000  # NMS-free exports give at most a few hundred rows (300); anchor grids give thousands
CLASS_OFFSET = 8192.0  # px between the classes' boxes during NMS: more than any input size


class Detector:
    """Finds people in a frame."""

    name = "detector"

    def detect(self, frame: Frame) -> Detections:
        raise NotImplementedError

    def close(self) -> None:
        """Release what the detector holds (a runtime session); the default holds nothing."""


# -- fitting frames to the model input ----------------------------------------------------------
@dataclass(frozen=True)
class Fit:
    """How a frame was fitted into the model input: scaled by ``scale_x`` and ``scale_y``, then
    padded by ``left`` and ``top``."""

    scale_x: float
    scale_y: float
    left: int = 0
    top: int = 0

    def to_frame(self, boxes: np.ndarray, width: int, height: int) -> np.ndarray:
        """Boxes (x1, y1, x2, y2) in model-input pixels back to frame pixels, clipped to the frame."""
        out = boxes.astype(np.float32, copy=True)
        out[:, [0, 2]] = (out[:, [0, 2]] - self.left) / self.scale_x
        out[:, [1, 3]] = (out[:, [1, 3]] - self.top) / self.scale_y
        return clip_boxes(out, width, height)


def letterbox(image: np.ndarray, size: tuple[int, int], stride: int | None = None, pad_value: int = 114) -> tuple[np.ndarray, Fit]:
    """Resize keeping the aspect ratio to fit ``size`` (height, width) and pad with ``pad_value``.

    With ``stride`` (models with a dynamic input size) the canvas is the smallest multiple of
    ``stride`` that holds the resized image instead of the whole ``size``.
    """
    cv2 = import_cv2()
    h0, w0 = image.shape[:2]
    height, width = size
    scale = min(height / h0, width / w0)
    nw, nh = max(1, round(w0 * scale)), max(1, round(h0 * scale))
    if stride:
        height, width = math.ceil(nh / stride) * stride, math.ceil(nw / stride) * stride
    resized = image if (nw, nh) == (w0, h0) else cv2.resize(image, (nw, nh), interpolation=cv2.INTER_LINEAR)
    left, top = (width - nw) // 2, (height - nh) // 2
    canvas = np.full((height, width, 3), pad_value, np.uint8)
    canvas[top:top + nh, left:left + nw] = resized
    return canvas, Fit(scale, scale, left, top)


def stretch(image: np.ndarray, size: tuple[int, int]) -> tuple[np.ndarray, Fit]:
    """Resize to exactly ``size`` (height, width), as models trained on stretched images expect."""
    cv2 = import_cv2()
    h0, w0 = image.shape[:2]
    height, width = size
    resized = image if (h0, w0) == (height, width) else cv2.resize(image, (width, height), interpolation=cv2.INTER_LINEAR)
    return resized, Fit(width / w0, height / h0)


# -- yolo ----------------------------------------------------------------------------------------
def output_layout(shape: tuple[int, ...]) -> str | None:
    """The YOLO layout of an output of ``shape``, or None when it is none of them.

    (1, N, 6) with N <= 1000: end-to-end (x1, y1, x2, y2, score, class); otherwise the smaller
    of the two last dimensions holds the values of a box: (1, 4 + classes, N) is YOLOv8/YOLO11,
    (1, N, 5 + classes) is YOLOv5.
    """
    if len(shape) != 3 or shape[0] != 1:
        return None
    rows, cols = shape[1], shape[2]
    if cols == 6 and rows <= END2END_MAX_ROWS:
        return "end2end"
    if rows < cols and rows >= 5:
        return "yolov8"
    if cols < rows and cols >= 6:
        return "yolov5"
    return None


def decode_yolo(output: np.ndarray, layout: str, conf: float, iou: float, classes: tuple[int, ...],
                max_det: int = 300) -> tuple[np.ndarray, np.ndarray]:
    """Boxes (x1, y1, x2, y2, model-input pixels) and scores of the wanted ``classes`` above ``conf``."""
    pred = output[0].astype(np.float32, copy=False)
    if layout == "end2end":
        keep = (pred[:, 4] > conf) & np.isin(np.rint(pred[:, 5]).astype(np.int64), classes)
        pred = pred[keep]
        order = np.argsort(-pred[:, 4], kind="stable")[:max_det]
        return pred[order, :4], pred[order, 4]
    if layout == "yolov8":
        pred = pred.T
        class_scores, objectness = pred[:, 4:], None
    else:
        class_scores, objectness = pred[:, 5:], pred[:, 4]
    best = class_scores.argmax(axis=1)
    scores = class_scores[np.arange(len(pred)), best]
    if objectness is not None:
        scores = scores * objectness
    keep = (scores > conf) & np.isin(best, classes)
    boxes, scores, labels = cxcywh_to_xyxy(pred[keep, :4]), scores[keep], best[keep]
    if len(scores) > 30 * max_det:  # NMS cost grows with the candidates: keep the best ones
        top = np.argsort(-scores, kind="stable")[: 30 * max_det]
        boxes, scores, labels = boxes[top], scores[top], labels[top]
    # one NMS for all classes: each class is moved to its own region, so classes never suppress each other
    kept = nms(boxes + (labels * CLASS_OFFSET)[:, None], scores, iou, max_det)
    return boxes[kept], scores[kept]


class YoloDetector(Detector):
    """An Ultralytics-style exported detector (YOLOv5, YOLOv8/YOLO11 or NMS-free end-to-end).

    The layout is found from the output shape on a first inference at open (see
    :func:`output_layout`); ``layout`` forces one. Frames are letterboxed to the model's input
    size (a dynamic-size model: ``size``, padded to a multiple of ``stride``), converted to RGB
    in 0..1; boxes of ``classes`` (COCO person) above ``conf`` go through NMS at ``iou`` (not for
    end-to-end models, which did it themselves) and back to frame pixels.

    A TensorRT engine (.engine/.trt/.plan) runs through the TensorRT runner (which pushes the
    device's primary CUDA context around each call, so any thread may call :meth:`detect`).

    ``resize`` "stretch" resizes frames to the (fixed) input size without keeping their aspect
    ratio, for models trained so (SSD).
    """

    name = "yolo"

    def __init__(self, path: str | Path, conf: float = 0.25, iou: float = 0.45, size: int = 640, stride: int = 32,
                 classes: tuple[int, ...] = (PERSON,), layout: str | None = None, device: str = "auto",
                 threads: int | None = None, max_det: int = 300, resize: str = "letterbox"):
        self.path = Path(path)
        if not self.path.is_file():
            raise DetectorError(f"{self.path}: detector model not found; give an exported .onnx or .engine file")
        if layout is not None and layout not in YOLO_LAYOUTS:
            raise UsageError(f"layout {layout!r}: expected one of {', '.join(YOLO_LAYOUTS)}")
        if resize not in RESIZE_MODES:
            raise UsageError(f"resize {resize!r}: expected one of {', '.join(RESIZE_MODES)}")
        self.resize = resize
        self.conf, self.iou, self.classes, self.max_det = float(conf), float(iou), tuple(int(c) for c in classes), int(max_det)
        self.runner = open_file_runner(self.path, device, threads)
        try:
            self.runner.activate()
        except BackendUnavailableError as e:
            reason = str(e).splitlines()[0]
            if self.path.suffix.lower() in ENGINE_SUFFIXES:
                raise DetectorError(f"{self.path}: cannot run this TensorRT engine here ({reason}); "
                                    f"use the detector's .onnx file on machines without TensorRT") from None
            raise DetectorError(f"{self.path}: not a readable ONNX model ({reason})") from None
        spec = self._image_input()
        self.input_name, self.input_dtype = spec.name, np.dtype(spec.dtype)
        h, w = spec.shape[2], spec.shape[3]
        fixed = isinstance(h, int) and isinstance(w, int)
        self.input_size = (h, w) if fixed else (int(size), int(size))
        self.stride = None if fixed or resize == "stretch" else int(stride)
        output = self._infer(np.full((*self.input_size, 3), 114, np.uint8))
        found = output_layout(tuple(output.shape))
        self.layout = layout or found
        if self.layout is None:
            raise DetectorError(
                f"{self.path}: unknown detector output layout {tuple(output.shape)}; expected YOLOv5 (1, N, 5 + classes), "
                f"YOLOv8/YOLO11 (1, 4 + classes, N) or end-to-end (1, N, 6)")
        log.info("%s: %s layout, output %s, input %s", self.path.name, self.layout, tuple(output.shape), self.input_size)

    def _image_input(self) -> Any:
        """The model's one input, checked to be an NCHW image batch of one: (1 or dynamic, 3, H, W)."""
        inputs = self.runner.input_metadata()
        shape = inputs[0].shape if len(inputs) == 1 else ()
        batch_ok = len(shape) == 4 and (shape[0] == 1 or isinstance(shape[0], str))
        if not batch_ok or shape[1] != 3:
            found = ", ".join(f"{s.name} {tuple(s.shape)}" for s in inputs)
            raise DetectorError(f"{self.path}: the detector input must be one image tensor (1, 3, H, W): NCHW, "
                                f"3 channels (RGB), batch 1 or dynamic; the model has {found}; "
                                f"export it so (Ultralytics: yolo export format=onnx)")
        return inputs[0]

    def _infer(self, canvas: np.ndarray) -> np.ndarray:
        blob = np.ascontiguousarray(canvas[..., ::-1].transpose(2, 0, 1)[None], dtype=np.float32) / 255.0
        outputs = self.runner.infer({self.input_name: blob.astype(self.input_dtype, copy=False)})
        return next(iter(outputs.values()))

    def detect(self, frame: Frame) -> Detections:
        image = frame.image
        canvas, fit = (stretch(image, self.input_size) if self.resize == "stretch"
                       else letterbox(image, self.input_size, self.stride))
        boxes, scores = decode_yolo(self._infer(canvas), self.layout, self.conf, self.iou, self.classes, self.max_det)
        if not len(boxes):
            return Detections.empty()
        return Detections.from_xyxy(fit.to_frame(boxes, image.shape[1], image.shape[0]), scores)

    def close(self) -> None:
        self.runner.deactivate()


# -- ssdlite -------------------------------------------------------------------------------------
class SsdliteDetector(YoloDetector):
    """SSDLite MobileNetV2 trained on VOC person boxes, converted once to ONNX by
    ``dgnet-edge detector fetch ssdlite`` (see :mod:`.ssdlite`), run through the ONNX path above.

    ``path`` None reads the cached model (a DetectorError naming the fetch command when it is not
    there). Frames are stretched to 300x300, as the model was trained; box decoding and NMS run in
    the graph, whose rows give x1, y1, x2, y2, score, class (0: person).
    """

    name = "ssdlite"

    def __init__(self, path: str | Path | None = None, conf: float = 0.3, iou: float = 0.45, device: str = "auto",
                 threads: int | None = None, max_det: int = 100):
        from dgnet_edge.apps.camera.live.ssdlite import require_model

        model = require_model() if path is None else Path(path)
        if not model.is_file():
            raise DetectorError(f"{model}: ssdlite model not found; give the ssdlite.onnx that "
                                f"`dgnet-edge detector fetch ssdlite` wrote, or leave the file out to use the cached one")
        try:
            super().__init__(model, conf=conf, iou=iou, classes=(PERSON,), device=device, threads=threads,
                             max_det=max_det, resize="stretch")
        except DetectorError as e:
            reason = str(e)[len(f"{model}: "):] if str(e).startswith(f"{model}: ") else str(e)
            raise DetectorError(f"{model}: not a converted ssdlite model ({reason.split(';')[0]}); "
                                f"fetch it again: dgnet-edge detector fetch ssdlite --force") from None
        if self.layout != "end2end":
            self.close()
            raise DetectorError(f"{model}: its output is not the (1, N, 6) rows of a converted ssdlite model; "
                                f"fetch it again: dgnet-edge detector fetch ssdlite --force")


# -- hog -----------------------------------------------------------------------------------------
def hog_people_detector() -> Any:
    """A ``cv2.HOGDescriptor`` with OpenCV's pretrained people SVM (core in OpenCV 4, contrib in 5)."""
    cv2 = import_cv2()
    default = getattr(cv2, "HOGDescriptor_getDefaultPeopleDetector", None)
    if default is None and hasattr(cv2, "HOGDescriptor"):
        default = getattr(cv2.HOGDescriptor, "getDefaultPeopleDetector", None)
    if not hasattr(cv2, "HOGDescriptor") or default is None:
        raise DetectorError(
            f"this OpenCV ({cv2.__version__}) has no HOG people detector: in OpenCV 5 it is in the contrib build "
            f"(pip uninstall opencv-python-headless; pip install opencv-contrib-python-headless); JetPack's OpenCV 4 has it")
    hog = cv2.HOGDescriptor()
    hog.setSVMDetector(default())
    return hog


class HogDetector(Detector):
    """OpenCV's HOG + linear SVM pedestrian detector (Dalal and Triggs, CVPR 2005): no download.

    Its 64x128 window finds people at least about 100 px tall at ``downscale`` 1; ``downscale``
    2 halves the frame first (about 4x faster, people from about 200 px). ``win_stride`` (px)
    trades recall for speed, ``scale`` is the pyramid step. Scores map the SVM margin ``m`` to
    0..1 as ``1 - exp(-m)``.
    """

    name = "hog"

    def __init__(self, downscale: float = 1.0, win_stride: int = 8, scale: float = 1.05, hit_threshold: float = 0.0,
                 padding: int = 8, iou: float = 0.45, min_score: float = 0.0):
        if downscale <= 0 or win_stride < 1 or scale <= 1.0:
            raise UsageError(f"hog: downscale must be > 0, win_stride >= 1 and scale > 1 (got {downscale}, {win_stride}, {scale})")
        self.hog = hog_people_detector()
        self.downscale, self.win_stride, self.scale = float(downscale), int(win_stride), float(scale)
        self.hit_threshold, self.padding, self.iou, self.min_score = float(hit_threshold), int(padding), float(iou), float(min_score)
        self._too_small: set[str] = set()  # cameras already warned about

    def _fits_window(self, camera: str, image: np.ndarray) -> bool:
        """Whether ``image`` holds at least one HOG window; OpenCV crashes (or raises) on smaller
        images, so those find no one, with one warning per camera."""
        width, height = self.hog.winSize
        if image.shape[0] >= height and image.shape[1] >= width:
            return True
        if camera not in self._too_small:
            self._too_small.add(camera)
            log.warning("camera %s: %dx%d frames are smaller than the HOG detector's %dx%d window%s: no person is "
                        "detected in them; use larger frames or another --detector", camera, image.shape[1],
                        image.shape[0], width, height, f" (after downscale {self.downscale:g})" if self.downscale != 1 else "")
        return False

    def detect(self, frame: Frame) -> Detections:
        cv2 = import_cv2()
        image = frame.image
        small = image if self.downscale == 1.0 else cv2.resize(
            image, None, fx=1 / self.downscale, fy=1 / self.downscale, interpolation=cv2.INTER_AREA)
        if not self._fits_window(frame.camera, small):
            return Detections.empty()
        rects, weights = self.hog.detectMultiScale(
            small, hitThreshold=self.hit_threshold, winStride=(self.win_stride, self.win_stride),
            padding=(self.padding, self.padding), scale=self.scale)
        if len(rects) == 0:
            return Detections.empty()
        xywh = np.asarray(rects, np.float32).reshape(-1, 4) * self.downscale
        boxes = clip_boxes(tlwh_to_xyxy(xywh), image.shape[1], image.shape[0])
        scores = (1.0 - np.exp(-np.clip(np.asarray(weights, np.float32).reshape(-1), 0, None))).astype(np.float32)
        keep = nms(boxes, scores, self.iou)
        keep = keep[scores[keep] >= self.min_score]
        return Detections.from_xyxy(boxes[keep], scores[keep])


# -- motion --------------------------------------------------------------------------------------
class MotionDetector(Detector):
    """Moving people on a static camera: MOG2 background subtraction, one model per camera.

    The foreground mask (shadows dropped) is cleaned by an opening, its gaps closed by a tall
    closing, and each connected component whose box is person-shaped (height/width within
    ``aspect``, at least ``min_area`` px and ``min_height`` px tall, in frame pixels) becomes a
    detection scored by how much of its box is foreground. The first ``warmup`` frames of each
    camera only learn the background. ``downscale`` 2 runs on a half-size frame (about 3x faster).
    """

    name = "motion"

    def __init__(self, history: int = 300, var_threshold: float = 25.0, shadows: bool = True, min_area: int = 600,
                 min_height: int = 40, aspect: tuple[float, float] = (1.0, 5.0), downscale: float = 2.0, warmup: int = 10,
                 learning_rate: float = -1.0):
        if downscale < 1 or aspect[0] <= 0 or aspect[0] > aspect[1]:
            raise UsageError(f"motion: downscale must be >= 1 and aspect a (low, high) ratio range (got {downscale}, {aspect})")
        self.history, self.var_threshold, self.shadows = int(history), float(var_threshold), bool(shadows)
        self.min_area, self.min_height, self.aspect = int(min_area), int(min_height), (float(aspect[0]), float(aspect[1]))
        self.downscale, self.warmup, self.learning_rate = float(downscale), int(warmup), float(learning_rate)
        self._models: dict[str, Any] = {}
        self._seen: dict[str, int] = {}

    def foreground(self, frame: Frame) -> np.ndarray:
        """The cleaned foreground mask (uint8 0/255) at the working size; updates the camera's model."""
        cv2 = import_cv2()
        model = self._models.get(frame.camera)
        if model is None:
            model = self._models[frame.camera] = cv2.createBackgroundSubtractorMOG2(
                history=self.history, varThreshold=self.var_threshold, detectShadows=self.shadows)
        image = frame.image
        if self.downscale != 1.0:
            image = cv2.resize(image, None, fx=1 / self.downscale, fy=1 / self.downscale, interpolation=cv2.INTER_AREA)
        mask = model.apply(image, learningRate=self.learning_rate)
        _, mask = cv2.threshold(mask, 200, 255, cv2.THRESH_BINARY)  # shadows are 127
        mask = cv2.morphologyEx(mask, cv2.MORPH_OPEN, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (3, 3)))
        return cv2.morphologyEx(mask, cv2.MORPH_CLOSE, cv2.getStructuringElement(cv2.MORPH_RECT, (3, 7)))

    def detect(self, frame: Frame) -> Detections:
        cv2 = import_cv2()
        mask = self.foreground(frame)
        seen = self._seen[frame.camera] = self._seen.get(frame.camera, 0) + 1
        if seen <= self.warmup:
            return Detections.empty()
        count, _, stats, _ = cv2.connectedComponentsWithStats(mask, connectivity=8)
        stats = stats[1:].astype(np.float32)  # label 0 is the background
        d = self.downscale
        x, y, w, h, area = stats[:, 0] * d, stats[:, 1] * d, stats[:, 2] * d, stats[:, 3] * d, stats[:, 4] * d * d
        ratio = h / np.maximum(w, 1.0)
        keep = (w * h >= self.min_area) & (h >= self.min_height) & (ratio >= self.aspect[0]) & (ratio <= self.aspect[1])
        boxes = np.stack([x, y, x + w, y + h], axis=1)[keep]
        fill = np.clip(area[keep] / np.maximum(w[keep] * h[keep], 1.0), 0.0, 1.0)
        image = frame.image
        return Detections.from_xyxy(clip_boxes(boxes, image.shape[1], image.shape[0]), fill)


# -- public --------------------------------------------------------------------------------------
class PublicDetector(Detector):
    """Public detections from MOTChallenge ``det/det.txt`` files, looked up by camera and frame number.

    ``root`` is a video bench (``root/camN/det/det.txt``, one per camera, matched by
    ``frame.camera``) or one camera folder (``root/det/det.txt``, used for every frame).
    Detections below ``min_score`` are left out.
    """

    name = "public"

    def __init__(self, root: str | Path, min_score: float = 0.0):
        self.root = Path(root)
        self.min_score = float(min_score)
        if not self.root.is_dir():
            raise DetectorError(f"{self.root}: no such folder; public detections need a video bench (DIR/camN/det/det.txt) "
                                f"or a camera folder (DIR/det/det.txt)")
        self.single = (self.root / "det" / "det.txt").is_file()
        if not self.single and not any(self.root.glob("*/det/det.txt")):
            raise DetectorError(f"{self.root}: no det/det.txt here nor in its camera folders; "
                                f"write a bench with public detections with `dgnet-edge data video`")
        self._rows: dict[str, Any] = {}
        self._outside: set[str] = set()  # cameras already warned about

    def path_of(self, camera: str) -> Path:
        return self.root / "det" / "det.txt" if self.single else self.root / camera / "det" / "det.txt"

    def rows(self, camera: str) -> Any:
        """The camera's detections (:class:`~dgnet_edge.data.video.mot.MotRows`), read once."""
        key = "" if self.single else camera
        if key not in self._rows:
            path = self.path_of(camera)
            if not path.is_file():
                raise DetectorError(f"{path}: no public detections for camera {camera!r} in {self.root}")
            try:
                rows = read_mot(path)
            except DatasetError as e:
                raise DetectorError(str(e)) from None
            self._rows[key] = rows.select(rows.scores >= self.min_score) if self.min_score > 0 else rows
        return self._rows[key]

    def detect(self, frame: Frame) -> Detections:
        """The frame's detections, clipped to the frame; boxes wholly outside it are dropped (one
        warning per camera)."""
        rows = self.rows(frame.camera).at(frame.index)
        dets = Detections.from_xywh(rows.boxes, rows.scores)
        height, width = frame.image.shape[:2]
        boxes = clip_boxes(dets.boxes, width, height)
        inside = (boxes[:, 2] > boxes[:, 0]) & (boxes[:, 3] > boxes[:, 1])
        if not inside.all() and frame.camera not in self._outside:
            self._outside.add(frame.camera)
            log.warning("%s: detections outside the %dx%d frame of camera %s are dropped (first at frame %d)",
                        self.path_of(frame.camera), width, height, frame.camera, frame.index)
        return dets if inside.all() else dets.select(inside)


# -- opening by name -----------------------------------------------------------------------------
DETECTORS: dict[str, type[Detector]] = {"ssdlite": SsdliteDetector, "yolo": YoloDetector, "hog": HogDetector,
                                        "motion": MotionDetector, "public": PublicDetector}
NEEDS_ARG = {"yolo": "an exported model file (yolo FILE.onnx or FILE.engine)", "public": "a bench or camera folder (public DIR)"}
OPTIONAL_ARG = ("ssdlite",)  # the cached model, or a file


def open_detector(kind: str, arg: str | None = None, **options: Any) -> Detector:
    """A detector by name: ``ssdlite [FILE]``, ``yolo FILE``, ``hog``, ``motion`` or ``public DIR``;
    ``options`` are its keyword arguments."""
    import inspect

    if kind not in DETECTORS:
        raise UsageError(f"detector {kind!r}: expected one of {', '.join(DETECTORS)}")
    cls = DETECTORS[kind]
    if kind in NEEDS_ARG and not arg:
        raise UsageError(f"detector {kind} needs {NEEDS_ARG[kind]}")
    if kind not in NEEDS_ARG and kind not in OPTIONAL_ARG and arg:
        raise UsageError(f"detector {kind} takes no file or folder (got {arg!r})")
    allowed = [p for p in inspect.signature(cls.__init__).parameters if p not in ("self", "path", "root")]
    unknown = sorted(set(options) - set(allowed))
    if unknown:
        raise UsageError(f"detector {kind}: unknown option(s) {', '.join(unknown)}; it takes {', '.join(allowed)}")
    return cls(arg, **options) if kind in NEEDS_ARG or kind in OPTIONAL_ARG else cls(**options)
