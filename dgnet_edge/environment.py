"""What this machine offers the camera app: Python, the board, OpenCV, runtimes, CUDA, torch.

``dgnet-edge doctor`` prints these checks. Each one is read without side effects that matter on a
Jetson: torch is looked up, never imported (importing it costs seconds and hundreds of MB), and
CUDA is asked for its driver version only (no context is created).
"""

from __future__ import annotations

import ctypes
import importlib
import importlib.util
import platform
import re
import sys
from dataclasses import asdict, dataclass
from importlib import metadata
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional

# L4T (Jetson Linux) major release -> JetPack major (R35: JetPack 5, R36: JetPack 6, R38: JetPack 7).
L4T_TO_JETPACK = {32: "4", 35: "5", 36: "6", 38: "7"}
L4T_RELEASE_FILE = Path("/etc/nv_tegra_release")


@dataclass
class Check:
    """One line of the report: what was looked for, what was found, and what it means for the app."""

    name: str
    ok: bool  # False: something the app would miss (the meaning says what)
    found: str
    meaning: str

    def to_dict(self) -> Dict[str, Any]:
        return asdict(self)


def jetpack_of(l4t_text: str) -> Optional[str]:
    """"# R36 (release), REVISION: 4.0, ..." -> "6 (L4T R36.4.0)"; None when the text names no release."""
    found = re.search(r"R(\d+)\s*\(release\),\s*REVISION:\s*([\d.]+)", l4t_text)
    if found is None:
        return None
    major = int(found.group(1))
    jetpack = L4T_TO_JETPACK.get(major, "?")
    return f"{jetpack} (L4T R{major}.{found.group(2)})"


def distribution_version(name: str) -> Optional[str]:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def check_python() -> Check:
    version = ".".join(str(v) for v in sys.version_info[:3])
    training = sys.version_info >= (3, 10)
    meaning = ("deployment and training side both supported" if training else
               "deployment side supported (demo, gallery, report, eval-tracks); training, export and calibration "
               "need Python 3.10+ on another machine")
    return Check("python", sys.version_info >= (3, 8), f"{version} ({sys.executable})", meaning)


def check_board(release_file: Path = L4T_RELEASE_FILE) -> Check:
    kernel = platform.release()
    if release_file.is_file():
        jetpack = jetpack_of(release_file.read_text(errors="replace"))
        found = f"Jetson, JetPack {jetpack or '? (unreadable ' + str(release_file) + ')'}; kernel {kernel}"
        meaning = "use JetPack's OpenCV and TensorRT through a venv made with --system-site-packages"
        return Check("board", True, found, meaning)
    return Check("board", True, f"{platform.machine()}, kernel {kernel}", "not a Jetson")


def check_opencv(import_module: Callable[[str], Any] = importlib.import_module,
                 on_jetson: Optional[bool] = None) -> Check:
    try:
        cv2 = import_module("cv2")
    except ImportError as e:
        return Check("opencv", False, f"not importable ({e})",
                     "the camera app cannot run: pip install opencv-contrib-python-headless (on a Jetson: "
                     "JetPack's python3-opencv)")
    info = cv2.getBuildInformation()
    gstreamer = re.search(r"^\s*GStreamer:\s*(\S+)", info, re.MULTILINE)
    has_gstreamer = gstreamer is not None and gstreamer.group(1).upper() == "YES"
    has_hog = hasattr(cv2, "HOGDescriptor")
    wheels = [name for name in ("opencv-python", "opencv-python-headless", "opencv-contrib-python",
                                "opencv-contrib-python-headless") if distribution_version(name)]
    origin = f"pip: {', '.join(wheels)}" if wheels else "system build"
    found = (f"{cv2.__version__} ({origin}; {Path(cv2.__file__).parent}); GStreamer {'yes' if has_gstreamer else 'no'}, "
             f"HOG {'yes' if has_hog else 'no'}")
    notes = []
    if not has_gstreamer:
        notes.append("no CSI cameras (nvarguscamerasrc) or hardware-decoded RTSP pipelines; files, webcams and "
                     "RTSP through FFmpeg still work")
    if not has_hog:
        notes.append("no --detector hog (OpenCV 5 keeps it in the contrib build)")
    on_jetson = L4T_RELEASE_FILE.is_file() if on_jetson is None else on_jetson
    if wheels and on_jetson:
        notes.append(f"a pip OpenCV ({', '.join(wheels)}) shadows JetPack's GStreamer build: pip uninstall it")
    ok = not (on_jetson and (wheels or not has_gstreamer))
    return Check("opencv", ok, found, "; ".join(notes) or "camera capture, GStreamer pipelines and HOG all available")


def check_onnxruntime(import_module: Callable[[str], Any] = importlib.import_module) -> Check:
    try:
        ort = import_module("onnxruntime")
    except ImportError as e:
        return Check("onnxruntime", False, f"not importable ({e})",
                     "--backend onnxruntime unavailable: pip install onnxruntime (or NVIDIA's onnxruntime-gpu for Jetson)")
    providers = list(ort.get_available_providers())
    gpu = [p for p in providers if p in ("CUDAExecutionProvider", "TensorrtExecutionProvider")]
    meaning = ("ONNX Runtime can use the GPU (--device cuda)" if gpu else
               "CPU only: the export's INT8 CPU model is the fast path here")
    return Check("onnxruntime", True, f"{ort.__version__}; providers {', '.join(providers)}", meaning)


def check_tensorrt(import_module: Callable[[str], Any] = importlib.import_module) -> Check:
    try:
        trt = import_module("tensorrt")
    except ImportError:
        return Check("tensorrt", False, "not installed",
                     "engines cannot be built or run here: demo uses ONNX Runtime (on a Jetson, JetPack's TensorRT "
                     "is reached by a venv with --system-site-packages)")
    major = str(trt.__version__).split(".")[0]
    meaning = (f"dgnet-edge build makes engines here; INT8 uses the export's TensorRT {major} calibration cache"
               if major != "11" else "dgnet-edge build makes engines here; INT8 uses the export's Q/DQ model "
               "(TensorRT 11 has no implicit INT8)")
    return Check("tensorrt", True, str(trt.__version__), meaning)


def cuda_driver_version(load: Callable[[str], Any] = ctypes.CDLL) -> Optional[str]:
    """The CUDA driver's version ("12.6") from libcuda, without creating a context; None without a driver."""
    try:
        libcuda = load("libcuda.so.1")
    except OSError:
        return None
    version = ctypes.c_int(0)
    if libcuda.cuDriverGetVersion(ctypes.byref(version)) != 0 or version.value <= 0:
        return None
    return f"{version.value // 1000}.{version.value % 1000 // 10}"


def check_cuda(import_module: Callable[[str], Any] = importlib.import_module,
               driver_version: Callable[[], Optional[str]] = cuda_driver_version) -> Check:
    driver = driver_version()
    pycuda = distribution_version("pycuda")
    if driver is None:
        return Check("cuda", False, f"no CUDA driver; pycuda {pycuda or 'not installed'}",
                     "no GPU here: TensorRT and ONNX Runtime's CUDA provider cannot run")
    found = f"driver API {driver}; pycuda {pycuda or 'not installed'}"
    if pycuda is None:
        return Check("cuda", False, found, "the TensorRT runner needs pycuda: pip install pycuda")
    try:
        cuda = import_module("pycuda.driver")
        cuda.init()
        gpu = cuda.Device(0)
        found += f"; GPU 0: {gpu.name()} (compute capability {'.'.join(map(str, gpu.compute_capability()))})"
    except Exception as e:  # pycuda.driver.Error: no device, driver too old
        return Check("cuda", False, f"{found}; {type(e).__name__}: {e}", "the GPU cannot be used by the TensorRT runner")
    return Check("cuda", True, found, "the TensorRT runner can run engines built for this GPU")


def check_torch() -> Check:
    """Looked up, never imported."""
    if importlib.util.find_spec("torch") is None:
        return Check("torch", True, "not installed",
                     "deployment install: demo, gallery, report and eval-tracks work; train, export and calib need "
                     "pip install 'dgnet-edge[train]' (Python 3.10+)")
    return Check("torch", True, distribution_version("torch") or "installed",
                 "training side present: train, export and calib work; the camera app never imports torch")


def check_trackeval() -> Check:
    if importlib.util.find_spec("trackeval") is None:
        return Check("trackeval", True, "not installed",
                     "eval-tracks unavailable (left out on a Jetson: pip install --no-deps trackeval); the app runs")
    return Check("trackeval", True, distribution_version("trackeval") or "installed", "eval-tracks available")


def collect_checks() -> List[Check]:
    return [check_python(), check_board(), check_opencv(), check_onnxruntime(), check_tensorrt(), check_cuda(),
            check_torch(), check_trackeval()]


def demo_backend(checks: List[Check]) -> str:
    """What ``demo --backend auto`` will run on, given the checks."""
    by_name = {c.name: c for c in checks}
    if by_name["tensorrt"].ok and by_name["cuda"].ok:
        return "tensorrt (when the export holds an engine built on this device; else onnxruntime)"
    if by_name["onnxruntime"].ok:
        return "onnxruntime"
    return "none: install onnxruntime or TensorRT"


def app_can_run(checks: List[Check]) -> bool:
    by_name = {c.name: c for c in checks}
    has_cv2 = not by_name["opencv"].found.startswith("not importable")
    return has_cv2 and (by_name["onnxruntime"].ok or (by_name["tensorrt"].ok and by_name["cuda"].ok))
