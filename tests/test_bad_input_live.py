"""Bad input and faults on the live side (`dgnet-edge demo`: sources, detectors, outputs, signals):
each case ends in a one-line error, a clear warning or a sensible result, never in a crash, a
traceback, a silent success or lost outputs.

Runs that could crash natively, or that are stopped by a signal, run in a subprocess.
"""

from __future__ import annotations

import logging
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
from test_bad_input import _dead_pid, one_line_error, run_cli

from dgnet_edge.apps.camera.live.sources import Frame

CLI = "from dgnet_edge.cli.main import main; main()"


def cli(*args: object, timeout: float = 120) -> subprocess.CompletedProcess:
    """``dgnet-edge ARGS`` in a subprocess (wide lines, so that a warning stays on one line)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("OPENCV_")}
    env["COLUMNS"] = "400"
    return subprocess.run([sys.executable, "-c", CLI, *map(str, args)], capture_output=True, text=True,
                          timeout=timeout, env=env)


def write_video(path: Path, width: int, height: int, frames: int) -> Path:
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 10, (width, height))
    assert writer.isOpened()
    for i in range(frames):
        writer.write(np.full((height, width, 3), 40 + 20 * i, np.uint8))
    writer.release()
    return path


def write_frames(folder: Path, sizes: list[tuple[int, int]]) -> Path:
    """PNG frames 0000.png... of the given (width, height) sizes."""
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for i, (width, height) in enumerate(sizes):
        cv2.imwrite(str(folder / f"{i:04d}.png"), rng.integers(0, 255, (height, width, 3), np.uint8))
    return folder


def copy_camera(tiny_bench: Path, dest: Path) -> Path:
    """A writable copy of the tiny bench's camera 1 folder (frames, seqinfo.ini, det, gt)."""
    shutil.copytree(tiny_bench / "cam1", dest)
    return dest


def count_frames(video: Path) -> int:
    capture, count = cv2.VideoCapture(str(video)), 0
    while capture.read()[0]:
        count += 1
    capture.release()
    return count


# -- HOG on frames smaller than its 64x128 window: OpenCV crashed (SIGSEGV, double free) or raised ----------------
@pytest.mark.parametrize(("case", "detector"), [("video 16x16", "hog"), ("video 32x32", "hog"), ("frames 48x96", "hog"),
                                                ("video 16x16", "auto")])
def test_hog_on_frames_smaller_than_its_window_finds_no_one(case, detector, tmp_path):
    if case == "frames 48x96":
        source = write_frames(tmp_path / "small", [(48, 96)] * 4)
    else:
        side = int(case.split()[1].split("x")[0])
        source = write_video(tmp_path / "small.mp4", side, side, 4)
    result = cli("demo", "--source", source, "--detector", detector, "--no-appearance", "--no-progress", "--no-show",
                 "--save-txt", tmp_path / "tracks", "--json")
    assert result.returncode == 0, (result.returncode, result.stderr)
    assert "Traceback" not in result.stderr
    assert result.stderr.count("smaller than the HOG detector's 64x128 window") == 1, result.stderr
    assert '"frames": 4' in result.stdout and (tmp_path / "tracks" / "small.txt").is_file()


def test_hog_at_exactly_its_window_runs():
    from dgnet_edge.apps.camera.live.detectors import HogDetector

    hog = HogDetector()
    assert len(hog.detect(Frame("c", 1, np.zeros((128, 64, 3), np.uint8), 0.0))) == 0
    assert not hog._too_small


# -- SIGTERM stops like Ctrl-C; temporary videos of dead runs are removed ------------------------------------------
def test_sigterm_to_demo_keeps_tracks_and_videos(tiny_bench, tmp_path):
    frames = sorted((tiny_bench / "cam1" / "img1").iterdir())
    long = tmp_path / "long"
    long.mkdir()
    for i in range(400):  # a long recording, so that the run is still going when the signal comes
        (long / f"{i:06d}.jpg").symlink_to(frames[i % len(frames)])
    videos, tracks = tmp_path / "videos", tmp_path / "tracks"
    env = {**os.environ, "COLUMNS": "400"}
    process = subprocess.Popen([sys.executable, "-c", CLI, "demo", "--source", str(long), "--detector", "hog",
                                "--no-appearance", "--no-progress", "--no-show", "--save", str(videos),
                                "--save-txt", str(tracks), "--json"],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and not list(videos.glob(".*.tmp.mp4")) and process.poll() is None:
            time.sleep(0.1)
        assert list(videos.glob(".*.tmp.mp4")), "the demo did not start writing its video"
        process.send_signal(signal.SIGTERM)
        out, err = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 0, (process.returncode, err)
    assert "interrupted" in err and "Traceback" not in err
    assert (videos / "long.mp4").is_file() and (tracks / "long.txt").is_file()
    assert not [p for p in videos.iterdir() if p.name.startswith(".")], list(videos.iterdir())
    assert '"frames": ' in out and '"frames": 400' not in out  # stopped part way


def test_sigterm_runs_what_ctrl_c_runs():
    from dgnet_edge.cli.main import terminate_as_interrupt

    calls = []
    previous = signal.signal(signal.SIGINT, lambda signum, frame: calls.append(signum))  # as training does
    try:
        with terminate_as_interrupt():
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(0.01)
        assert calls == [signal.SIGINT]
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # a background job: Ctrl-C ignored, SIGTERM still stops
        with pytest.raises(KeyboardInterrupt), terminate_as_interrupt():
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(0.01)
    finally:
        signal.signal(signal.SIGINT, previous)
    assert signal.getsignal(signal.SIGTERM) == signal.SIG_DFL


def test_temporary_videos_of_dead_runs_are_removed(tiny_bench, tmp_path, capsys):
    videos = tmp_path / "videos"
    videos.mkdir()
    stale = videos / f".cam1.{_dead_pid()}.tmp.mp4"
    running = videos / f".cam1.{os.getppid()}.tmp.mp4"  # a run that still goes on keeps its file
    for path in (stale, running):
        path.write_bytes(b"x" * 100)
    code, _, err = run_cli(["demo", "--source", tiny_bench / "cam1", "--no-appearance", "--no-progress", "--no-show",
                            "--max-frames", "3", "--save", videos], capsys)
    assert code == 0, err
    assert not stale.exists() and running.exists() and (videos / "cam1.mp4").is_file()


def test_enrol_interrupted_during_synthesis_says_what_was_committed(tiny_dgnet_export, tiny_world, tmp_path,
                                                                   monkeypatch, capsys):
    from dgnet_edge.apps.camera.storage.gallery import Gallery
    from dgnet_edge.apps.camera.storage.synthesis import Synthesiser

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(Synthesiser, "enrol", interrupted)
    photo = sorted((tiny_world / "query").iterdir())[0]
    gallery = tmp_path / "g.db"
    code, out, err = run_cli(["gallery", "enrol", photo, "--name", "Ann", "--export", tiny_dgnet_export,
                              "--gallery", gallery, "--synthesise"], capsys)
    assert code == 130
    assert "interrupted: Ann is enrolled as identity 1" in err and "no synthetic view was added" in err
    with Gallery(gallery) as g:
        assert len(g) == 1


# -- outputs that are inputs -------------------------------------------------------------------------------------------
def test_an_output_that_is_an_input_is_refused_before_anything_runs(tiny_bench, tmp_path, capsys):
    gallery = tmp_path / "gallery.db"
    gallery.write_bytes(b"SQLite format 3\x00" + b"\x00" * 100)
    export = tmp_path / "export"
    export.mkdir()
    camera = copy_camera(tiny_bench, tmp_path / "cam1")
    video = write_video(tmp_path / "door.mp4", 64, 128, 3)
    before = {p: p.read_bytes() for p in (gallery, camera / "det" / "det.txt", video)}
    cases = [
        (["--source", camera, "--export", export, "--gallery", gallery, "--events", gallery], "is the gallery"),
        (["--source", camera, "--no-appearance", "--gallery", gallery, "--events", gallery], "is the gallery"),
        (["--source", camera, "--no-appearance", "--events", camera / "det" / "det.txt"], "the source of camera cam1"),
        (["--source", f"det={camera}", "--no-appearance", "--save-txt", camera / "det"], "the source of camera det"),
        (["--source", video, "--no-appearance", "--save", tmp_path], "the source of camera door"),
        (["--source", camera, "--export", export, "--gallery", video, "--source", video], "the source of camera door"),
    ]
    for args, expected in cases:
        code, _, err = run_cli(["demo", *args, "--no-progress", "--no-show"], capsys)
        line = one_line_error(err)
        assert code == 2 and expected in line and "writing it would destroy an input" in line, (args, line)
    assert {p: p.read_bytes() for p in before} == before


# -- public detections outside the frame ------------------------------------------------------------------------------
def test_public_detections_outside_the_frame_are_dropped_or_clipped(tiny_bench, tmp_path, caplog):
    from dgnet_edge.apps.camera.live.detectors import PublicDetector

    camera = copy_camera(tiny_bench, tmp_path / "cam1")
    (camera / "det" / "det.txt").write_text(
        "1,-1,10,20,30,60,0.9,-1,-1,-1\n"  # inside
        "1,-1,1000,1000,30,60,0.9,-1,-1,-1\n"  # wholly outside the 320x240 frame
        "1,-1,-50,-50,20,20,0.9,-1,-1,-1\n"  # wholly outside, above and left
        "1,-1,300,200,40,80,0.8,-1,-1,-1\n"  # partly outside
        "2,-1,2000,10,30,60,0.9,-1,-1,-1\n")
    detector = PublicDetector(camera)
    image = np.zeros((240, 320, 3), np.uint8)
    with caplog.at_level(logging.WARNING):
        dets = detector.detect(Frame("cam1", 1, image, 0.0))
        assert len(detector.detect(Frame("cam1", 2, image, 0.1))) == 0
    np.testing.assert_allclose(dets.boxes, [[10, 20, 40, 80], [300, 200, 320, 240]])
    np.testing.assert_allclose(dets.scores, [0.9, 0.8])
    warnings = [r.getMessage() for r in caplog.records if "outside the 320x240 frame" in r.getMessage()]
    assert len(warnings) == 1 and "det.txt" in warnings[0] and "cam1" in warnings[0]


# -- sources without frames, frames of another size --------------------------------------------------------------------
def _empty_avi(path: Path) -> Path:
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10, (64, 64))
    writer.release()
    return path


def test_a_video_without_frames_is_an_error_when_it_is_the_only_source(tmp_path, capsys):
    empty = _empty_avi(tmp_path / "empty.avi")
    code, out, err = run_cli(["demo", "--source", empty, "--no-appearance", "--no-progress", "--no-show",
                              "--save-txt", tmp_path / "tracks"], capsys)
    line = one_line_error(err)
    assert code == 1 and "empty.avi: no frame to read" in line and not out
    assert not (tmp_path / "tracks" / "empty.txt").exists()


def test_a_camera_without_frames_among_others_is_named_in_a_warning(tiny_bench, tmp_path, capsys, caplog):
    empty = _empty_avi(tmp_path / "empty.avi")
    with caplog.at_level(logging.WARNING):
        code, out, err = run_cli(["demo", "--source", tiny_bench / "cam1", "--source", empty, "--no-appearance",
                                  "--no-progress", "--no-show", "--json"], capsys)
    assert code == 0, err
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "camera empty" in warnings[0] and "no frame to read" in warnings[0], warnings
    assert '"frames": 30' in out


def test_frames_of_another_size_are_resized_into_the_video(tmp_path, capsys, caplog):
    sizes = [(320, 240)] * 3 + [(160, 120), (640, 480)] + [(320, 240)] * 2
    folder = write_frames(tmp_path / "frames", sizes)
    with caplog.at_level(logging.WARNING):
        code, _, err = run_cli(["demo", "--source", folder, "--no-appearance", "--detector", "motion", "--no-progress",
                                "--no-show", "--save", tmp_path / "videos"], capsys)
    assert code == 0, err
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "0003.png is 160x120" in warnings[0] and "resized to 320x240" in warnings[0], warnings
    assert count_frames(tmp_path / "videos" / "frames.mp4") == len(sizes)


def test_the_video_sink_resizes_frames_of_another_size(tmp_path, caplog):
    from dgnet_edge.apps.camera.live.outputs import VideoSink

    sink = VideoSink(tmp_path, 10.0)
    with caplog.at_level(logging.WARNING):
        for size in [(240, 320), (480, 640), (480, 640), (240, 320)]:
            sink.write_image("cam", np.zeros((*size, 3), np.uint8))
    (video,) = sink.close()
    assert count_frames(video) == 4
    assert sum("resized to fit" in r.getMessage() for r in caplog.records) == 1


# -- sources that exist but are no video; camera names ---------------------------------------------------------------
@pytest.mark.parametrize(("kind", "expected"), [("/dev/null", "a character device"), ("/dev/zero", "a character device"),
                                                ("fifo", "a named pipe (FIFO)")])
def test_a_special_file_as_source_says_what_it_is(kind, expected, tmp_path, capsys):
    spec = kind
    if kind == "fifo":
        spec = tmp_path / "pipe"
        os.mkfifo(spec)
    code, _, err = run_cli(["demo", "--source", spec, "--no-appearance", "--no-progress", "--no-show"], capsys)
    line = one_line_error(err)
    assert code == 1 and expected in line and "no such file" not in line


def test_camera_names_must_be_ascii_identifiers(tiny_bench, tmp_path, capsys):
    for spec in (f"café={tiny_bench / 'cam1'}", f"1st={tiny_bench / 'cam1'}"):
        code, _, err = run_cli(["demo", "--source", spec, "--no-appearance", "--no-progress", "--no-show"], capsys)
        line = one_line_error(err)
        assert code == 2 and "ASCII letters, digits" in line and "no such file" not in line
    odd = tmp_path / "a=b"  # an existing path with '=' stays a path
    shutil.copytree(tiny_bench / "cam1", odd)
    code, _, err = run_cli(["demo", "--source", odd, "--no-appearance", "--no-progress", "--no-show", "--max-frames",
                            "2"], capsys)
    assert code == 0, err
    help_text = cli("demo", "--help")
    assert help_text.returncode == 0 and "NAME: ASCII letters, digits" in help_text.stdout
    readme = (Path(__file__).parents[1] / "README.md").read_text()
    assert "NAME: ASCII letters, digits" in " ".join(readme.split())


# -- --detector auto picks per source ----------------------------------------------------------------------------------
def test_auto_detector_is_chosen_per_source(tiny_bench, tmp_path):
    from dgnet_edge.apps.camera.live.detectors import HogDetector, PublicDetector
    from dgnet_edge.apps.camera.live.run import open_detector_for
    from dgnet_edge.apps.camera.live.sources import open_source

    video = write_video(tmp_path / "door.mp4", 320, 240, 3)
    sources = [open_source(str(tiny_bench / "cam1")), open_source(str(video))]
    try:
        detector = open_detector_for("auto", None, sources)
        assert isinstance(detector.detectors["cam1"], PublicDetector)
        assert isinstance(detector.detectors["door"], HogDetector)
        detector.close()
    finally:
        for s in sources:
            s.close()


# -- YOLO models of another input layout -------------------------------------------------------------------------------
@pytest.mark.parametrize("shape", [[1, 64, 64, 3], [1, 1, 64, 64], [4, 3, 64, 64]], ids=["NHWC", "1-channel", "batch 4"])
def test_a_yolo_model_with_another_input_says_what_it_must_be(shape, tiny_bench, tmp_path, capsys):
    import onnx
    from onnx import TensorProto, helper

    graph = helper.make_graph([helper.make_node("Identity", ["images"], ["output0"])], "g",
                              [helper.make_tensor_value_info("images", TensorProto.FLOAT, shape)],
                              [helper.make_tensor_value_info("output0", TensorProto.FLOAT, shape)])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    path = tmp_path / "det.onnx"
    onnx.save(model, path)
    code, _, err = run_cli(["demo", "--source", tiny_bench / "cam1", "--detector", f"yolo:{path}", "--no-appearance",
                            "--no-progress", "--no-show"], capsys)
    line = one_line_error(err)
    assert code == 1 and "NCHW, 3 channels (RGB), batch 1 or dynamic" in line and str(tuple(shape)) in line


# -- seqinfo.ini values ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(("key", "value"), [("frameRate", "nan"), ("frameRate", "-15"), ("seqLength", "ten")])
def test_a_bad_seqinfo_value_is_one_line(key, value, tiny_bench, tmp_path, capsys):
    camera = copy_camera(tiny_bench, tmp_path / "cam1")
    info = camera / "seqinfo.ini"
    lines = [f"{key} = {value}" if line.startswith(f"{key} =") else line for line in info.read_text().splitlines()]
    info.write_text("\n".join(lines) + "\n")
    code, _, err = run_cli(["demo", "--source", camera, "--no-appearance", "--no-progress", "--no-show"], capsys)
    line = one_line_error(err)
    assert code == 1 and str(info) in line and f"{key} = {value!r}" in line and "expected" in line


# -- stderr holds our own lines ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("case", ["corrupt video", "stream refused"])
def test_opencv_and_ffmpeg_stay_off_stderr(case, tmp_path):
    if case == "corrupt video":
        spec = tmp_path / "junk.mp4"
        spec.write_bytes(np.random.default_rng(0).integers(0, 255, 3000, np.uint8).tobytes())
    else:
        spec = "rtsp://127.0.0.1:1/x"  # nothing listens on port 1
    result = cli("demo", "--source", spec, "--no-appearance", "--no-progress", "--no-show", "--open-timeout", "1")
    assert result.returncode == 1
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:"), result.stderr
