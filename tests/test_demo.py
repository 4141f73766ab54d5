"""`dgnet-edge demo`: the camera app end to end on a tiny video bench, its outputs and its errors."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
from conftest import TINY_BENCH
from dgnet_edge.apps.camera.live.app import CameraApp, crop_features
from dgnet_edge.apps.camera.live.detections import Detections
from dgnet_edge.apps.camera.live.detectors import Detector
from dgnet_edge.apps.camera.live.outputs import EventLog, MotSink
from dgnet_edge.apps.camera.live.run import split_name
from dgnet_edge.apps.camera.live.sources import open_source
from dgnet_edge.apps.camera.live.tracking.identities import IdentityParams, IdentityResolver
from dgnet_edge.apps.camera.storage.gallery import Gallery
from dgnet_edge.boxes import crops_to_embed
from dgnet_edge.cli.main import main
from dgnet_edge.data.video.mot import read_mot
from dgnet_edge.data.video.world import load_site


@pytest.fixture(scope="module")
def bench(tiny_bench):
    return tiny_bench


def _sources(bench):
    site = load_site(bench)
    return [str(site.camera_dir(name)) for name in site.camera_names]


def _demo(capsys, *args, show="--no-show"):
    """Exit code, stdout and stderr of ``dgnet-edge demo ARGS``."""
    with pytest.raises(SystemExit) as e:
        main(["demo", *[str(a) for a in args], "--no-progress", show])
    captured = capsys.readouterr()
    return (0 if e.value.code is None else e.value.code), captured.out, captured.err


def test_crops_are_rgb_and_clipped():
    image = np.zeros((20, 30, 3), np.uint8)
    image[..., 0] = 255  # blue in BGR
    (crop,) = crops_to_embed(image, np.array([[-5, -5, 10, 50]], np.float32))
    assert crop.shape == (20, 10, 3)
    assert (crop[..., 2] == 255).all() and (crop[..., 0] == 0).all()
    (tiny,) = crops_to_embed(image, np.array([[29.5, 19.5, 29.6, 19.6]], np.float32))
    assert tiny.shape[0] >= 1 and tiny.shape[1] >= 1


def test_named_sources():
    assert split_name("door=rtsp://127.0.0.1:8554/x") == ("door", "rtsp://127.0.0.1:8554/x")
    assert split_name("rtsp://127.0.0.1/x?a=1") == (None, "rtsp://127.0.0.1/x?a=1")
    assert split_name("data/video/cam1") == (None, "data/video/cam1")


def test_without_appearance_every_frame_is_tracked(bench, tmp_path, capsys):
    code, out, err = _demo(capsys, *sum((["--source", s] for s in _sources(bench)), []), "--no-appearance",
                           "--save-txt", tmp_path / "tracks", "--json")
    assert code == 0, err
    summary = json.loads(out)
    frames = TINY_BENCH.frames
    assert {name: cam["frames"] for name, cam in summary["cameras"].items()} == {"cam1": frames, "cam2": frames}
    tracks = {name: read_mot(tmp_path / "tracks" / f"{name}.txt") for name in ("cam1", "cam2")}
    assert all(len(rows) > 0 for rows in tracks.values())
    # per-camera track ids never collide across cameras when there is no gallery
    assert not set(tracks["cam1"].ids.tolist()) & set(tracks["cam2"].ids.tolist())


def test_demo_with_gallery_writes_every_output(bench, tiny_dgnet_export, tmp_path, capsys):
    gallery = tmp_path / "gallery.db"
    events = tmp_path / "events.jsonl"
    args = [*sum((["--source", s] for s in _sources(bench)), []), "--export", str(tiny_dgnet_export),
            "--threshold", "0.9", "--gallery", str(gallery), "--save-txt", str(tmp_path / "tracks"),
            "--save", str(tmp_path / "video"), "--events", str(events), "--json"]
    code, out, err = _demo(capsys, *args)
    assert code == 0, err
    summary = json.loads(out)
    assert summary["identities"] >= 1
    assert sum(cam["embedded"] for cam in summary["cameras"].values()) > 0
    assert (tmp_path / "video" / "cam1.mp4").stat().st_size > 0
    lines = [json.loads(line) for line in events.read_text().splitlines()]
    kinds = {e["event"] for e in lines}
    assert {"new_identity", "enter", "leave"} <= kinds
    with Gallery(gallery) as g:
        known = {i.id for i in g.identities()}
    written = set()
    for name in ("cam1", "cam2"):
        written |= set(read_mot(tmp_path / "tracks" / f"{name}.txt").ids.tolist())
    assert written and written <= known  # MOT ids are gallery identities

    # A second run over the same gallery finds the people it already knows.
    code, out, err = _demo(capsys, *args)
    assert code == 0, err
    assert json.loads(out)["events"].get("reidentified", 0) > 0


class _Boxes(Detector):
    """A detector that returns fixed boxes, so that the loop can be driven without a model."""

    def __init__(self, boxes):
        self.boxes = boxes

    def detect(self, frame):
        return Detections.from_xyxy(self.boxes)


def test_loop_holds_rows_until_the_identity_is_known(bench, tmp_path):
    """Rows written before a track had its identity are written under that identity."""
    (src,) = [open_source(_sources(bench)[0])]
    gallery = Gallery(tmp_path / "g.db", feature_dim=4)
    resolver = IdentityResolver(gallery, 0.5, IdentityParams(decide_after=3, enrol_min_motion=0))  # a still box

    def embed(crops):
        return np.tile(np.array([[1.0, 0, 0, 0]], np.float32), (len(crops), 1))

    mot = MotSink(tmp_path)
    events = EventLog(tmp_path / "events.jsonl")
    loop = CameraApp([src], _Boxes([[10, 10, 60, 150]]), crop_features(embed), resolver, sinks=[mot, events])
    stats = loop.run(max_frames=12)
    src.close()
    gallery.close()
    rows = read_mot(tmp_path / "cam1.txt")
    assert stats.frames == 12
    assert set(rows.ids.tolist()) == {1}
    assert rows.frame.min() == 3  # confirmed after 3 hits: written from then, not from the identity decision on


def test_held_rows_never_give_an_identity_twice_in_a_frame(tmp_path):
    """A track that takes the identity of a lost track of its camera keeps its held rows only for
    the frames where the lost track did not have it yet (MOT ids are unique per frame)."""
    from dgnet_edge.apps.camera.live.record import FrameResult
    from dgnet_edge.apps.camera.live.sources import Frame
    from dgnet_edge.apps.camera.live.tracking.tracker import CONFIRMED, LOST, Track

    def track(track_id, x, state=CONFIRMED, det_index=0):
        return Track(track_id=track_id, box=np.array([x, 10, x + 20, 60], np.float32), state=state, score=0.9,
                     det_index=det_index)

    mot = MotSink(tmp_path)
    mot.start(["cam1"])
    image = np.zeros((100, 200, 3), np.uint8)
    for index, tracks, identities in [(1, [track(1, 10), track(2, 100)], {1: 35}),
                                      (2, [track(1, 12, LOST, -1), track(2, 102)], {2: 35})]:
        mot.write(FrameResult("cam1", Frame("cam1", index, image, index / 10), tracks=tracks, identities=identities))
    mot.close()
    rows = read_mot(tmp_path / "cam1.txt")
    assert rows.frame.tolist() == [1, 2] and rows.ids.tolist() == [35, 35]
    assert rows.boxes[0].tolist() == [10, 10, 20, 50]  # frame 1: the track that had the identity then


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ([], "give at least one camera"),
        (["--source", "nosuch-folder", "--no-appearance"], "nosuch-folder"),
        (["--source", "0", "--detector", "yolo"], "needs the model file"),
        (["--source", "0", "--detector", "sonar"], "--detector"),
        (["--source", "0"], "--export is needed"),
        (["--source", "0", "--export", "nosuch-export"], "does not exist"),
        (["--source", "0", "--no-appearance", "--threshold", "0.5"], "--threshold needs appearance"),
    ],
)
def test_bad_input_is_one_line(args, message, capsys):
    code, _, err = _demo(capsys, *args)
    assert code in (1, 2)
    assert message in err
    assert "Traceback" not in err


def test_output_under_a_file_is_refused_before_opening_sources(bench, tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    for option in ("--save", "--save-txt"):
        code, _, err = _demo(capsys, "--source", _sources(bench)[0], "--no-appearance", option, blocker / "out")
        assert code == 1
        assert "not a folder" in err
    code, _, err = _demo(capsys, "--source", _sources(bench)[0], "--no-appearance", "--events", blocker / "e.jsonl")
    assert code == 1 and "not a folder" in err


def test_show_without_a_gui_is_a_usage_error(bench, capsys):
    code, _, err = _demo(capsys, "--source", _sources(bench)[0], "--no-appearance", show="--show")
    assert code == 2
    assert "--show" in err


# -- a live camera that drops out: RTSP on loopback, killed mid-stream and restarted ---------------
def _walker_frames(folder, count=30):
    """Frames of one red-and-blue figure walking across a grey 320x240 view, as 000001.jpg..."""
    import cv2

    folder.mkdir(parents=True)
    for i in range(count):
        image = np.full((240, 320, 3), 128, np.uint8)
        x = 20 + i * 8
        image[60:130, x:x + 40] = (30, 30, 200)  # BGR red torso
        image[130:200, x + 5:x + 35] = (200, 60, 30)  # blue legs
        cv2.imwrite(str(folder / f"{i + 1:06d}.jpg"), image)
    return folder


class _ColourBlobs(Detector):
    """The box around the pixels far from the grey background (a stand-in for a person detector)."""

    def detect(self, frame):
        mask = np.abs(frame.image.astype(np.int16) - 128).max(axis=2) > 50
        ys, xs = np.nonzero(mask)
        if len(xs) < 50:
            return Detections.empty()
        return Detections.from_xyxy([[xs.min(), ys.min(), xs.max() + 1, ys.max() + 1]], [0.9])


def _colour_features(crops):
    """Per-crop 3x8-bin colour histograms, L2-normalised: the same figure scores near 1."""
    feats = np.stack([np.concatenate([np.histogram(c[..., k], bins=8, range=(0, 256))[0] for k in range(3)])
                      for c in crops]).astype(np.float32)
    return feats / np.linalg.norm(feats, axis=1, keepdims=True)


class _SignAndWalker(Detector):
    """A sign the detector mistakes for a person (a fixed box) and the walking figure (a colour blob)."""

    SIGN = [250, 40, 290, 120]

    def detect(self, frame):
        mask = np.abs(frame.image[:, :240].astype(np.int16) - 128).max(axis=2) > 50
        ys, xs = np.nonzero(mask)
        return Detections.from_xyxy([[xs.min(), ys.min(), xs.max() + 1, ys.max() + 1], self.SIGN], [0.9, 0.9])


def test_a_sign_is_tracked_but_never_enrolled_and_the_walker_is(tmp_path):
    import cv2

    folder = tmp_path / "img1"
    folder.mkdir()
    for i in range(90):  # 6 s at 15 frames/s
        image = np.full((240, 320, 3), 128, np.uint8)
        x = 10 + 2 * i
        image[60:130, x:x + 40] = (30, 30, 200)
        image[130:200, x + 5:x + 35] = (200, 60, 30)
        image[40:120, 250:290] = (0, 220, 240)  # the yellow sign
        cv2.imwrite(str(folder / f"{i + 1:06d}.jpg"), image)
    source = open_source(str(folder), "cam1")
    events = tmp_path / "events.jsonl"
    mot = MotSink(tmp_path)
    with Gallery(tmp_path / "g.db", feature_dim=24) as gallery:
        resolver = IdentityResolver(gallery, 0.8, IdentityParams(static_after_s=2.0))
        app = CameraApp([source], _SignAndWalker(), crop_features(_colour_features), resolver, sinks=[mot, EventLog(events)])
        app.run()
        source.close()
        assert len(gallery) == 1
    made = [json.loads(line) for line in events.read_text().splitlines() if '"new_identity"' in line]
    assert len(made) == 1
    rows = read_mot(tmp_path / "cam1.txt")
    walker = rows.select(rows.boxes[:, 0] < 240)
    assert set(walker.ids.tolist()) == {made[0]["identity"]}  # the walker's rows carry its identity


def test_identities_survive_a_dropped_rtsp_camera(tmp_path):
    import threading
    import time

    from rtsp_server import LoopbackRtspServer, unavailable_reason

    reason = unavailable_reason()
    if reason and os.environ.get("CI"):
        pytest.fail(f"CI must run the RTSP tests: {reason}")
    if reason:
        pytest.skip(reason)
    frames = _walker_frames(tmp_path / "img1")
    events = tmp_path / "events.jsonl"
    with LoopbackRtspServer(images=frames, fps=15) as server:
        source = open_source(server.url, "door", open_timeout_s=5, read_timeout_s=1)
        ready = threading.Event()
        holder = {}

        def run_app():  # the gallery's SQLite connection belongs to the thread that runs the loop
            with Gallery(tmp_path / "g.db", feature_dim=24) as gallery:
                holder["app"] = CameraApp([source], _ColourBlobs(), crop_features(_colour_features),
                                          IdentityResolver(gallery, 0.8), sinks=[EventLog(events)])
                ready.set()
                holder["app"].run()

        runner = threading.Thread(target=run_app)
        runner.start()
        assert ready.wait(10)
        app = holder["app"]
        try:
            deadline = time.monotonic() + 30
            while app.stats.events.get("new_identity", 0) == 0 and time.monotonic() < deadline:
                time.sleep(0.1)
            assert app.stats.events.get("new_identity") == 1, app.stats.events
            server.kill()
            deadline = time.monotonic() + 15
            while source.state != "reconnecting" and time.monotonic() < deadline:
                time.sleep(0.05)
            assert source.state == "reconnecting"
            assert runner.is_alive()  # the app keeps running while its camera is gone
            frames_before = app.stats.frames
            server.start()
            deadline = time.monotonic() + 30
            while (source.reconnects == 0 or app.stats.frames < frames_before + 40) and time.monotonic() < deadline:
                time.sleep(0.1)
            assert source.reconnects == 1 and app.stats.frames >= frames_before + 40
        finally:
            app.stop()
            runner.join(timeout=20)
            source.close()
    lines = [json.loads(line) for line in events.read_text().splitlines()]
    assert [e["event"] for e in lines].count("new_identity") == 1  # the person is not new after the reconnect
    assert {e["identity"] for e in lines} == {lines[0]["identity"]}
    assert "reidentified" in [e["event"] for e in lines]  # later tracks found the person in the gallery
    with Gallery(tmp_path / "g.db") as gallery:
        assert len(gallery) == 1


def test_the_demo_never_imports_torch(bench, tiny_dgnet_export, tmp_path):
    """The deployment side: a whole demo run with re-id and the gallery, torch never loaded."""
    import subprocess
    import sys

    args = [*sum((["--source", s] for s in _sources(bench)), []), "--export", str(tiny_dgnet_export),
            "--threshold", "0.9", "--gallery", str(tmp_path / "g.db"), "--save-txt", str(tmp_path / "t"),
            "--max-frames", "20", "--no-progress", "--no-show"]
    code = ("import sys\nfrom dgnet_edge.cli.main import main\ntry:\n    main(['demo', *sys.argv[1:]])\n"
            "except SystemExit as e:\n    assert not e.code, e.code\nassert 'torch' not in sys.modules, 'torch was imported'\n")
    result = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr


def test_a_folder_of_unreadable_images_is_one_line(tmp_path, capsys):
    folder = tmp_path / "frames"
    folder.mkdir()
    for i in range(3):
        (folder / f"{i:06d}.jpg").write_bytes(b"not a jpeg")
    code, _, err = _demo(capsys, "--source", folder, "--no-appearance")
    assert code == 1
    assert "3 image(s) found, none could be read" in err and "Traceback" not in err


def test_display_keys_select_pause_enrol_and_quit(monkeypatch):
    """The --show window's keys, with OpenCV's window calls replaced (no display here)."""
    import cv2

    from dgnet_edge.apps.camera.live.display import Display
    from dgnet_edge.apps.camera.live.outputs import Label
    from dgnet_edge.apps.camera.live.sources import Frame
    from dgnet_edge.apps.camera.live.tracking.tracker import Track

    keys, callbacks, shown = [], {}, []
    monkeypatch.setattr(cv2, "namedWindow", lambda name, flags=0: None)
    monkeypatch.setattr(cv2, "setMouseCallback", lambda name, fn: callbacks.__setitem__(name, fn))
    monkeypatch.setattr(cv2, "imshow", lambda name, image: shown.append(name))
    monkeypatch.setattr(cv2, "waitKey", lambda delay=0: keys.pop(0) if keys else -1)
    enrolled = []
    display = Display(lambda camera, track: enrolled.append((camera, track.track_id)))
    frame = Frame("cam1", 1, np.zeros((100, 100, 3), np.uint8), 0.0)
    track = Track(track_id=7, box=np.array([10, 10, 50, 90], np.float32), state="confirmed", score=0.9, det_index=0)
    labels = [Label(track.box, "t7", -7, 7)]

    assert display.show(frame, [track], labels) is True and shown == ["cam1"]
    keys[:] = [ord("e")]  # enrol with nothing selected: nothing happens
    assert display.show(frame, [track], labels) is True and enrolled == []
    callbacks["cam1"](cv2.EVENT_LBUTTONDOWN, 20, 30, 0, None)  # click inside the box
    assert display.selected == ("cam1", 7)
    keys[:] = [ord("e")]
    assert display.show(frame, [track], labels) is True and enrolled == [("cam1", 7)]
    keys[:] = [ord("p"), -1, ord("p")]  # pause: frames wait until p again
    assert display.show(frame, [track], labels) is True and keys == [] and not display.paused
    keys[:] = [ord("q")]
    assert display.show(frame, [track], labels) is False
