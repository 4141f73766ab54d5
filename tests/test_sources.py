"""Camera app sources: files and folders in order, live sources latest-first, reconnects, bad specs."""

from __future__ import annotations

import os
import threading
import time

import cv2
import numpy as np
import pytest

from dgnet_edge.apps.camera.live.sources import (
    FILE_QUEUE_FRAMES,
    Source,
    jetson_csi_pipeline,
    jetson_rtsp_pipeline,
    open_source,
    timeout_params,
)
from dgnet_edge.errors import DgnetEdgeError, SourceError

from rtsp_server import LoopbackRtspServer, unavailable_reason


def flat(value: int, size=(48, 64)) -> np.ndarray:
    """A frame whose every pixel is ``value``: the index survives JPEG and MPEG-4 compression."""
    return np.full((*size, 3), value, np.uint8)


def value_of(image: np.ndarray) -> int:
    return int(round(float(image.mean())))


def write_mot_camera(folder, indices, fps=15, frames=True):
    folder.mkdir(parents=True)
    (folder / "seqinfo.ini").write_text(
        f"[Sequence]\nname={folder.name}\nimDir=img1\nframeRate={fps}\nseqLength={max(indices)}\n"
        "imWidth=64\nimHeight=48\nimExt=.jpg\n")
    if frames:
        (folder / "img1").mkdir()
        for i in indices:
            cv2.imwrite(str(folder / "img1" / f"{i:06d}.jpg"), flat(10 * i % 250))
    return folder


def write_video(path, count, fps=15):
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, (64, 48))
    for i in range(1, count + 1):
        writer.write(flat(10 * i))
    writer.release()
    return path


def read_all(source, timeout=10.0):
    frames = []
    while (frame := source.read(timeout=timeout)) is not None:
        frames.append(frame)
    return frames


# -- files and folders ---------------------------------------------------------------------------
def test_image_folder_delivers_every_frame_in_sorted_order(tmp_path):
    for i in (3, 1, 2, 10):  # written out of order; 10 sorts after 03 by the zero-padded name
        cv2.imwrite(str(tmp_path / f"f{i:02d}.png"), flat(20 * i))
    (tmp_path / "notes.txt").write_text("not an image")
    (tmp_path / "f05.jpg").write_bytes(b"truncated")  # a corrupt frame is skipped, not fatal
    with open_source(str(tmp_path)) as source:
        assert not source.live and source.name == tmp_path.name and source.fps is None
        frames = read_all(source)
        assert source.read(timeout=1) is None  # ended stays ended
    assert [f.index for f in frames] == [1, 2, 3, 5]  # the position in the sorted folder: f05 was 4
    assert [value_of(f.image) for f in frames] == [20, 40, 60, 200]
    assert all(f.image.dtype == np.uint8 and f.image.shape == (48, 64, 3) for f in frames)
    assert source.state == "ended"


def test_mot_folder_takes_indices_from_names_and_fps_from_seqinfo(tmp_path):
    camera = write_mot_camera(tmp_path / "bench" / "cam2", [1, 2, 3, 5, 6], fps=10)
    with open_source(str(camera)) as source:
        assert source.name == "cam2" and source.fps == 10
        frames = read_all(source)
    assert [f.index for f in frames] == [1, 2, 3, 5, 6]
    assert [f.camera for f in frames] == ["cam2"] * 5
    assert [f.time for f in frames] == pytest.approx([0.0, 0.1, 0.2, 0.4, 0.5])
    assert [abs(value_of(f.image) - 10 * f.index) <= 2 for f in frames] == [True] * 5


def test_mot_folder_without_frames_reads_the_camera_video(tmp_path):
    camera = write_mot_camera(tmp_path / "cam1", [1, 2, 3, 4], fps=15, frames=False)
    write_video(tmp_path / "cam1.mp4", 4)
    with open_source(str(camera)) as source:
        assert source.name == "cam1" and source.fps == 15 and not source.live
        frames = read_all(source)
    assert [f.index for f in frames] == [1, 2, 3, 4]
    assert [abs(value_of(f.image) - 10 * f.index) <= 4 for f in frames] == [True] * 4


def test_video_file_delivers_every_frame_in_order(tmp_path):
    video = write_video(tmp_path / "walk.mp4", 12, fps=12)
    with open_source(str(video), "door") as source:
        assert source.name == "door" and source.fps == pytest.approx(12)
        frames = read_all(source)
    assert [f.index for f in frames] == list(range(1, 13))
    assert [abs(value_of(f.image) - 10 * f.index) <= 4 for f in frames] == [True] * 12
    assert frames[-1].time == pytest.approx(11 / 12)


def test_file_reader_waits_for_a_slow_consumer(tmp_path):
    camera = write_mot_camera(tmp_path / "cam1", list(range(1, 31)))
    with open_source(str(camera)) as source:
        first = source.read(timeout=10)
        time.sleep(0.5)
        assert source.frames_read <= FILE_QUEUE_FRAMES + 2  # bounded: decoded ahead, not all of it
        rest = read_all(source)
    assert [f.index for f in [first, *rest]] == list(range(1, 31))


def test_close_stops_a_file_source_mid_way(tmp_path):
    camera = write_mot_camera(tmp_path / "cam1", list(range(1, 31)))
    source = open_source(str(camera))
    assert source.read(timeout=10).index == 1
    source.close()
    assert not source.alive
    assert source.read(timeout=1) is None


# -- live behaviour (a fake stream: Source's reader callables, no camera) ------------------------
def fake_stream(count, delay=0.0, start=1):
    def frames():
        for i in range(start, start + count):
            time.sleep(delay)
            yield i, flat(i % 256)

    return frames


def test_live_source_delivers_the_latest_frame():
    done = threading.Event()

    def frames():
        yield from fake_stream(200, 0.001)()
        done.set()

    source = Source("cam", "fake", live=True, fps=None, frames=frames, reconnect=False)
    done.wait(10)
    frame = source.read(timeout=5)
    assert frame.index == 200  # the newest one, not the first in a backlog
    assert source.dropped == 199
    assert source.read(timeout=5) is None and source.state == "ended"
    source.close()


def test_live_source_reconnects_with_backoff_and_keeps_counting():
    attempts = []
    segments = iter([fake_stream(3, 0.01, 1), fake_stream(3, 0.01, 4)])

    def reopen():
        attempts.append(time.monotonic())
        return len(attempts) >= 3  # the stream is back at the third try

    current = [next(segments)]

    def frames():
        yield from current[0]()

    def reopen_and_switch():
        ok = reopen()
        if ok:
            current[0] = next(segments)
        return ok

    source = Source("cam", "fake", live=True, fps=None, frames=frames, reopen=reopen_and_switch, backoff_s=(0.05, 0.2))
    seen, states = [], set()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and (not seen or seen[-1] < 6):
        states.add(source.state)
        try:
            seen.append(source.read(timeout=0.05).index)
        except TimeoutError:
            pass
    source.close()
    assert seen[-1] == 6 and seen == sorted(seen)
    assert "reconnecting" in states and source.reconnects == 1
    gaps = np.diff(attempts)
    assert len(attempts) == 3 and gaps[1] > gaps[0] * 1.5  # exponential backoff
    assert not source.alive


def test_reader_failure_is_reported_not_swallowed():
    def frames():
        yield 1, flat(1)
        raise OSError("disk went away")

    source = Source("cam", "fake", live=False, fps=None, frames=frames)
    assert source.read(timeout=5).index == 1
    with pytest.raises(SourceError, match="cam.*disk went away"):
        source.read(timeout=5)
    assert source.state == "failed"


def test_read_times_out_while_the_source_runs():
    release = threading.Event()

    def frames():
        release.wait(10)
        yield 1, flat(1)

    source = Source("cam", "fake", live=True, fps=None, frames=frames, reconnect=False)
    with pytest.raises(TimeoutError):
        source.read(timeout=0.05)
    release.set()
    assert source.read(timeout=5).index == 1
    source.close()


# -- bad specs -------------------------------------------------------------------------------------
def one_line_error(spec, match, **kw):
    with pytest.raises(SourceError, match=match) as info:
        open_source(spec, **kw)
    message = str(info.value)
    assert "\n" not in message and isinstance(info.value, DgnetEdgeError)
    return message


def test_bad_specs_are_one_line_errors(tmp_path):
    one_line_error(str(tmp_path / "nope.mp4"), "no such file or folder; expected a webcam index")
    one_line_error("", "empty source")
    (tmp_path / "empty").mkdir()
    one_line_error(str(tmp_path / "empty"), "no images")
    cv2.imwrite(str(tmp_path / "one.jpg"), flat(5))
    one_line_error(str(tmp_path / "one.jpg"), "a single image")
    (tmp_path / "junk.mp4").write_bytes(np.random.default_rng(0).bytes(4096))
    one_line_error(str(tmp_path / "junk.mp4"), "junk.mp4: cannot open the video file; not a readable video")


def test_bench_root_and_broken_mot_folders(tmp_path):
    for cam in ("cam1", "cam2"):
        write_mot_camera(tmp_path / "bench" / cam, [1, 2])
    message = one_line_error(str(tmp_path / "bench"), "a video bench with cameras cam1, cam2")
    assert f"--source {tmp_path / 'bench' / 'cam1'}" in message
    write_mot_camera(tmp_path / "nofr" / "cam3", [1], frames=False)
    one_line_error(str(tmp_path / "nofr" / "cam3"), "without frames .* or a video")
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "seqinfo.ini").write_text("imDir=img1\n")
    one_line_error(str(broken), "seqinfo.ini: not a MOTChallenge seqinfo.ini")


def test_missing_webcam():
    one_line_error("97", "97: cannot open the webcam; check that the camera is plugged in")


def test_http_url_is_read_as_a_live_stream(tmp_path):
    import functools
    from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer

    class Quiet(SimpleHTTPRequestHandler):
        def log_message(self, *args):
            pass

    write_video(tmp_path / "clip.mp4", 6)
    server = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Quiet, directory=str(tmp_path)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/clip.mp4"
        with open_source(url, reconnect=False) as source:
            assert source.live and source.name == "127.0.0.1-clip.mp4"
            frame = source.read(timeout=10)
            assert frame.image.shape == (48, 64, 3) and frame.camera == "127.0.0.1-clip.mp4"
            while source.read(timeout=10) is not None:
                pass
            assert source.state == "ended"  # a live source without reconnect ends when the stream does
    finally:
        server.shutdown()
        server.server_close()


def test_stream_that_does_not_answer(tmp_path):
    from rtsp_server import free_port

    start = time.monotonic()
    one_line_error(f"rtsp://127.0.0.1:{free_port()}/cam", "cannot open the stream; no stream within 2 s", open_timeout_s=2)
    assert time.monotonic() - start < 10


@pytest.mark.skipif(cv2.videoio_registry.hasBackend(cv2.CAP_GSTREAMER), reason="this OpenCV has GStreamer")
def test_pipeline_without_gstreamer_says_so():
    one_line_error(jetson_csi_pipeline(0, 1280, 720, 30), "built without GStreamer .*getBuildInformation")


def test_jetson_pipelines():
    csi = jetson_csi_pipeline(1, 1920, 1080, 30)
    assert csi.startswith("nvarguscamerasrc sensor-id=1 ! ") and "width=(int)1920" in csi and "framerate=(fraction)30/1" in csi
    assert "nvvidconv" in csi and csi.endswith("appsink drop=true max-buffers=1 sync=false") and "format=(string)BGR !" in csi
    rtsp = jetson_rtsp_pipeline("rtsp://10.0.0.5/stream", latency=100)
    assert rtsp.startswith("rtspsrc location=rtsp://10.0.0.5/stream latency=100 ! rtph264depay ! h264parse ! nvv4l2decoder")
    assert "rtph265depay ! h265parse" in jetson_rtsp_pipeline("rtsp://x/y", codec="h265")
    with pytest.raises(SourceError, match="codec 'vp9'"):
        jetson_rtsp_pipeline("rtsp://x/y", codec="vp9")


def test_timeouts_are_passed_as_capture_params():
    params = timeout_params(3, 1.5)
    assert params == [cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, 3000, cv2.CAP_PROP_READ_TIMEOUT_MSEC, 1500]


# -- a real stream: RTSP on loopback, killed and restarted ----------------------------------------
def skip_without_rtsp_server():
    """Skip where the loopback RTSP server cannot run, except in CI, whose .ci/run installs it."""
    reason = unavailable_reason()
    if reason and os.environ.get("CI"):
        pytest.fail(f"CI must run the RTSP tests: {reason}")
    if reason:
        pytest.skip(reason)


@pytest.fixture
def rtsp_server():
    skip_without_rtsp_server()
    with LoopbackRtspServer(fps=15) as server:
        yield server


def wait_for(predicate, timeout):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return False


def test_rtsp_source_reconnects_after_the_server_dies(rtsp_server):
    """The app keeps reading other cameras while one stream is down and picks the stream up again."""
    source = open_source(rtsp_server.url, open_timeout_s=3, read_timeout_s=1)
    other = Source("other", "fake", live=True, fps=None, frames=fake_stream(10**6, 0.01), reconnect=False)
    try:
        assert source.live and source.name == f"127.0.0.1-{rtsp_server.path}"
        first = [source.read(timeout=10) for _ in range(5)]
        assert [f.image.shape for f in first] == [(240, 320, 3)] * 5
        assert [f.index for f in first] == sorted({f.index for f in first})

        rtsp_server.kill()
        assert wait_for(lambda: source.state == "reconnecting", 10), source
        assert source.alive and source.reconnects == 0
        other_before = other.read(timeout=5).index
        time.sleep(1.0)  # the server stays down for a while: backoff retries fail
        assert source.state == "reconnecting"
        assert other.read(timeout=5).index > other_before  # the other camera never stopped

        rtsp_server.start()
        assert wait_for(lambda: source.state == "connected", 20), source
        assert source.reconnects == 1
        last = first[-1].index
        after = []
        while len(after) < 5:
            frame = source.read(timeout=10)
            if frame.index > last:
                after.append(frame)
        assert all(f.image.shape == (240, 320, 3) for f in after)
        assert source.alive and source.state == "connected"
    finally:
        source.close()
        other.close()
    assert not source.alive


def test_rtsp_server_streams_a_folder_of_frames(tmp_path):
    skip_without_rtsp_server()
    camera = write_mot_camera(tmp_path / "cam1", list(range(1, 11)))
    with LoopbackRtspServer(images=camera / "img1", fps=15) as server:
        with open_source(server.url, "cam1", open_timeout_s=5, read_timeout_s=2) as source:
            frames = [source.read(timeout=10) for _ in range(3)]
    assert [f.image.shape for f in frames] == [(48, 64, 3)] * 3 and [f.camera for f in frames] == ["cam1"] * 3


def test_a_looped_folder_keeps_counting_frames(tmp_path):
    import cv2

    folder = tmp_path / "frames"
    folder.mkdir()
    for i in range(3):
        cv2.imwrite(str(folder / f"{i:03d}.png"), np.full((8, 8, 3), i * 40, np.uint8))
    with open_source(str(folder), loop=True) as source:
        frames = [source.read(timeout=5) for _ in range(7)]
    assert [f.index for f in frames] == [1, 2, 3, 4, 5, 6, 7]
    assert [int(f.image[0, 0, 0]) for f in frames] == [0, 40, 80, 0, 40, 80, 0]
    with pytest.raises(SourceError, match="replayed in a loop"):
        open_source(str(folder / "000.png"), loop=True)
