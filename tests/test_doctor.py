"""`dgnet-edge doctor`: each finding from recorded inputs (a Jetson's release file, OpenCV builds,
TensorRT versions), and the command itself on this machine."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest

from dgnet_edge import environment as env
from dgnet_edge.cli.main import main


@pytest.mark.parametrize("text, expected", [
    ("# R35 (release), REVISION: 4.1, GCID: 33958178, BOARD: t186ref, EABI: aarch64, DATE: Tue Aug  1 19:57:35 UTC 2023",
     "5 (L4T R35.4.1)"),
    ("# R36 (release), REVISION: 4.3, GCID: 38968081, BOARD: generic, EABI: aarch64", "6 (L4T R36.4.3)"),
    ("# R38 (release), REVISION: 2.0, GCID: 41844464, BOARD: generic, EABI: aarch64", "7 (L4T R38.2.0)"),
    ("not a release line", None),
])
def test_jetpack_from_the_l4t_release_file(text, expected):
    assert env.jetpack_of(text) == expected


def test_the_board_check_reads_the_release_file(tmp_path):
    release = tmp_path / "nv_tegra_release"
    release.write_text("# R36 (release), REVISION: 3.0, GCID: 36191598, BOARD: generic, EABI: aarch64\n")
    check = env.check_board(release)
    assert "JetPack 6 (L4T R36.3.0)" in check.found and "--system-site-packages" in check.meaning
    assert env.check_board(tmp_path / "absent").meaning == "not a Jetson"


def fake_cv2(gstreamer: bool, hog: bool) -> SimpleNamespace:
    info = f"  Video I/O:\n    GStreamer:                   {'YES (1.16.3)' if gstreamer else 'NO'}\n"
    module = SimpleNamespace(__version__="4.5.4", __file__="/usr/lib/python3/dist-packages/cv2/__init__.py",
                             getBuildInformation=lambda: info)
    if hog:
        module.HOGDescriptor = object
    return module


def test_opencv_findings(monkeypatch):
    monkeypatch.setattr(env, "distribution_version", lambda name: None)  # a system build, as JetPack's
    jetpack = env.check_opencv(lambda name: fake_cv2(gstreamer=True, hog=True), on_jetson=True)
    assert jetpack.ok and "system build" in jetpack.found and "GStreamer yes" in jetpack.found

    plain = env.check_opencv(lambda name: fake_cv2(gstreamer=False, hog=False), on_jetson=False)
    assert plain.ok and "no CSI cameras" in plain.meaning and "no --detector hog" in plain.meaning

    monkeypatch.setattr(env, "distribution_version", lambda name: "4.10.0" if name == "opencv-python" else None)
    shadowed = env.check_opencv(lambda name: fake_cv2(gstreamer=False, hog=True), on_jetson=True)
    assert not shadowed.ok and "shadows JetPack's GStreamer build" in shadowed.meaning


def test_missing_modules_are_findings_not_errors():
    def missing(name):
        raise ImportError(f"No module named {name!r}")

    assert not env.check_opencv(missing).ok
    assert not env.check_onnxruntime(missing).ok
    trt = env.check_tensorrt(missing)
    assert not trt.ok and trt.found == "not installed"
    cuda = env.check_cuda(missing, driver_version=lambda: None)
    assert not cuda.ok and "no CUDA driver" in cuda.found


@pytest.mark.parametrize("version, words", [("8.5.2.2", "TensorRT 8 calibration cache"), ("10.3.0.30", "TensorRT 10"),
                                            ("11.0.0", "Q/DQ model")])
def test_tensorrt_version_says_how_int8_is_built(version, words):
    check = env.check_tensorrt(lambda name: SimpleNamespace(__version__=version))
    assert check.ok and check.found == version and words in check.meaning


def test_which_backend_the_demo_takes():
    def checks(trt: bool, cuda: bool, ort: bool, cv2: bool = True):
        return [env.Check("opencv", cv2, "4.8.0" if cv2 else "not importable (x)", ""),
                env.Check("onnxruntime", ort, "", ""), env.Check("tensorrt", trt, "", ""), env.Check("cuda", cuda, "", "")]

    assert env.demo_backend(checks(True, True, True)).startswith("tensorrt")
    assert env.demo_backend(checks(True, False, True)) == "onnxruntime"
    assert env.app_can_run(checks(False, False, True))
    assert not env.app_can_run(checks(False, False, False))
    assert not env.app_can_run(checks(True, True, True, cv2=False))


def test_doctor_on_this_machine(capsys):
    with pytest.raises(SystemExit) as e:
        main(["doctor", "--json"])
    assert not e.value.code
    report = json.loads(capsys.readouterr().out)
    names = [c["name"] for c in report["checks"]]
    assert names == ["python", "board", "opencv", "onnxruntime", "tensorrt", "cuda", "torch", "trackeval"]
    assert report["app_can_run"] is True


def test_doctor_exits_1_when_the_app_cannot_run(monkeypatch, capsys):
    monkeypatch.setattr(env, "app_can_run", lambda checks: False)
    with pytest.raises(SystemExit) as e:
        main(["doctor"])
    assert e.value.code == 1
    assert "dgnet-edge doctor" in capsys.readouterr().out
