"""Events on MQTT against a real broker (Debian's mosquitto, started here on 127.0.0.1), the one
event schema of docs/events.md, and the ``merged`` event.

Each broker runs with its own config file on a free port. Where mosquitto cannot start the tests
are skipped, except in CI (the ``CI`` variable set), where they fail.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import paho.mqtt.client as mqtt
import pytest
from conftest import TINY_BENCH
from dgnet_edge.apps.camera.live.app import CameraApp, crop_features
from dgnet_edge.apps.camera.live.detections import Detections
from dgnet_edge.apps.camera.live.detectors import Detector
from dgnet_edge.apps.camera.live.mqtt_events import MqttEvents, MqttTarget
from dgnet_edge.apps.camera.live.outputs import EventLog, Sink
from dgnet_edge.apps.camera.live.record import Enter, FrameResult, Leave, Merged, NewIdentity, Reidentified
from dgnet_edge.apps.camera.live.tracking.identities import IdentityParams, IdentityResolver
from dgnet_edge.apps.camera.live.sources import open_source
from dgnet_edge.apps.camera.live.tracking.tracker import CONFIRMED, Track
from dgnet_edge.apps.camera.storage.gallery import Gallery
from dgnet_edge.boxes import l2_normalise
from dgnet_edge.cli.main import main
from dgnet_edge.data.video.world import load_site

REPO = Path(__file__).resolve().parents[1]
TOPIC = "site"


def _unavailable(why: str) -> None:
    if os.environ.get("CI"):
        pytest.fail(why)
    pytest.skip(why)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Broker:
    """A mosquitto on 127.0.0.1 with its own config file and folder; ``persistence`` keeps retained
    messages and persistent sessions across :meth:`stop` and :meth:`start`, as a site's broker would."""

    def __init__(self, folder: Path, persistence: bool = False, password_file: Path | None = None,
                 tls: tuple[Path, Path, Path] | None = None):
        self.folder = folder
        self.folder.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.persistence = persistence
        self.password_file = password_file
        self.tls = tls  # CA, certificate and key files
        self.proc: subprocess.Popen | None = None

    def start(self) -> Broker:
        exe = shutil.which("mosquitto") or shutil.which("mosquitto", path="/usr/sbin")
        if exe is None:
            _unavailable("mosquitto is not installed (apt-get install mosquitto)")
        config = self.folder / "mosquitto.conf"
        lines = [f"listener {self.port} 127.0.0.1", "user root", "max_queued_messages 100000",
                 f"persistence {'true' if self.persistence else 'false'}"]
        if self.tls is not None:
            lines += [f"{option} {path}" for option, path in zip(("cafile", "certfile", "keyfile"), self.tls)]
        if self.password_file is None:
            lines.append("allow_anonymous true")
        else:
            lines += ["allow_anonymous false", f"password_file {self.password_file}"]
        if self.persistence:
            lines.append(f"persistence_location {self.folder}/")
        config.write_text("\n".join(lines) + "\n")
        log = open(self.folder / "mosquitto.log", "ab")  # noqa: SIM115 - the broker's own
        self.proc = subprocess.Popen([exe, "-c", str(config)], stdout=log, stderr=subprocess.STDOUT)
        log.close()
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and self.proc.poll() is None:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return self
            except OSError:
                time.sleep(0.05)
        self.stop()
        _unavailable(f"mosquitto did not start: {(self.folder / 'mosquitto.log').read_text()[-500:]}")
        return self

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()  # SIGTERM: a persistent broker saves its sessions and retained messages
            self.proc.wait(10)
        self.proc = None


@pytest.fixture
def broker(tmp_path):
    b = Broker(tmp_path / "broker").start()
    yield b
    b.stop()


@pytest.fixture
def persistent_broker(tmp_path):
    b = Broker(tmp_path / "broker", persistence=True).start()
    yield b
    b.stop()


class Subscriber:
    """A consumer of ``TOPIC/#``: every message with its topic and retain flag. ``client_id`` makes
    it a persistent session (the broker keeps its messages while it is away)."""

    def __init__(self, port: int, client_id: str | None = None):
        self.messages: list[tuple[str, dict, bool]] = []
        self.subscribed = 0
        self.cond = threading.Condition()
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id or "",
                                  clean_session=client_id is None)
        self.client.reconnect_delay_set(1, 1)
        self.client.on_connect = lambda c, *a: c.subscribe(f"{TOPIC}/#", qos=1)
        self.client.on_subscribe = lambda *a: self._note(None)
        self.client.on_message = lambda c, u, m: self._note((m.topic, json.loads(m.payload), bool(m.retain)))
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()
        assert self.wait(lambda: self.subscribed > 0), "the subscriber got no SUBACK"

    def _note(self, message: tuple[str, dict, bool] | None) -> None:
        with self.cond:
            if message is None:
                self.subscribed += 1
            else:
                self.messages.append(message)
            self.cond.notify_all()

    def wait(self, predicate, timeout: float = 20.0) -> bool:
        with self.cond:
            return self.cond.wait_for(predicate, timeout)

    def events(self) -> list[dict]:
        with self.cond:
            return [p for t, p, _ in self.messages if t.startswith(f"{TOPIC}/events/")]

    def statuses(self, device: str) -> list[tuple[dict, bool]]:
        with self.cond:
            return [(p, r) for t, p, r in self.messages if t == f"{TOPIC}/status/{device}"]

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def retained_status(port: int, device: str) -> dict:
    """The status a consumer that connects now is told (the retained message)."""
    sub = Subscriber(port)
    try:
        assert sub.wait(lambda: sub.statuses(device)), f"no retained status for {device}"
        status, retained = sub.statuses(device)[0]
        assert retained
        return status
    finally:
        sub.close()


def seqs(events: list[dict]) -> list[int]:
    """The events' ``seq`` in the order they came, repeats (QoS 1 resends) left out."""
    seen, order = set(), []
    for e in events:
        if e["seq"] not in seen:
            seen.add(e["seq"])
            order.append(e["seq"])
    return order


def write_enters(sink, numbers) -> list[float]:
    """One ``enter`` per number (track = number) through ``sink.write``; how long each write took."""
    took = []
    for n in numbers:
        t0 = time.perf_counter()
        sink.write(FrameResult("cam1", None, events=[Enter(float(n), "cam1", n, 1, None)]))
        took.append(time.perf_counter() - t0)
    return took


def wait_until(predicate, timeout: float = 30.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return predicate()


# -- the schema -------------------------------------------------------------------------------------
TYPES = {"int": (int,), "float": (float, int), "string": (str,), "list of strings": (list,)}


def documented_fields() -> dict[str, dict[str, tuple]]:
    """docs/events.md's tables: kind -> field -> accepted types (``"*"``: the fields of every event)."""
    fields: dict[str, dict[str, tuple]] = {}
    section = None
    for line in (REPO / "docs" / "events.md").read_text().splitlines():
        heading = re.match(r"^##+ (.+)$", line)
        if heading:
            title = heading.group(1).strip()
            section = "*" if title == "Fields of every event" else title if re.fullmatch(r"[a-z_]+", title) else None
            if section is not None:
                fields.setdefault(section, {})
            continue
        row = re.match(r"^\| `(\w+)` \| ([^|]+) \|", line)
        if row and section is not None:
            kind, nullable = row.group(2).strip(), False
            if kind.endswith(" or null"):
                kind, nullable = kind[: -len(" or null")], True
            fields[section][row.group(1)] = TYPES[kind] + ((type(None),) if nullable else ())
    return fields


def check_message(message: dict, device: str) -> None:
    """``message`` has exactly the documented fields of its kind, of the documented types."""
    doc = documented_fields()
    assert message["event"] in doc, f"kind {message['event']} not documented"
    expected = {**doc["*"], **doc[message["event"]]}
    assert set(message) == set(expected), (message["event"], set(message) ^ set(expected))
    for name, types in expected.items():
        assert isinstance(message[name], types), (message["event"], name, message[name])
    assert message["schema"] == 1 and message["device"] == device


def every_kind() -> list:
    crop = np.zeros((8, 4, 3), np.uint8)
    return [NewIdentity(1.0, "cam1", 3, 7, None, crop=crop), Enter(1.0, "cam1", 3, 7, None),
            Reidentified(2.5, "cam2", 4, 7, "alice", score=0.8123, previous_camera="cam1", previous_time=1.9),
            Enter(2.5, "cam2", 4, 7, "alice"), Merged(3.0, "cam2", 4, 2, "alice", keep=2, other=7),
            Leave(4.0, "cam2", 4, 2, "alice", first=2.5)]


def test_the_file_and_mqtt_write_one_documented_schema(broker, tmp_path):
    sub = Subscriber(broker.port)
    try:
        sink = MqttEvents(MqttTarget("127.0.0.1", broker.port, TOPIC), "edge-1")
        log_file = EventLog(tmp_path / "events.jsonl", "edge-1")
        sink.start(["cam1", "cam2"])
        result = FrameResult("cam2", None, events=every_kind())
        for s in (sink, log_file):
            s.write(result)
            s.close()
        assert sub.wait(lambda: len(sub.events()) >= 6)
        published = sub.events()
    finally:
        sub.close()
    lines = [json.loads(line) for line in (tmp_path / "events.jsonl").read_text().splitlines()]
    assert [m["event"] for m in published] == ["new_identity", "enter", "reidentified", "enter", "merged", "leave"]
    for on_mqtt, in_file in zip(published, lines):
        check_message(on_mqtt, "edge-1")
        assert {k: v for k, v in on_mqtt.items() if k != "wall"} == {k: v for k, v in in_file.items() if k != "wall"}
    assert [m["seq"] for m in published] == [1, 2, 3, 4, 5, 6]
    assert published[4]["keep"] == published[4]["identity"] == 2 and published[4]["other"] == 7
    assert abs(published[0]["wall"] - time.time()) < 60


# -- the demo on the video bench ----------------------------------------------------------------------
def _sources(bench) -> list[str]:
    site = load_site(bench)
    return [str(site.camera_dir(name)) for name in site.camera_names]


def _demo(capsys, *args):
    with pytest.raises(SystemExit) as e:
        main(["demo", *[str(a) for a in args], "--no-progress", "--no-show"])
    captured = capsys.readouterr()
    return (0 if e.value.code is None else e.value.code), captured.out, captured.err


def test_demo_events_arrive_with_the_documented_fields(broker, tiny_bench, tiny_dgnet_export, tmp_path, capsys):
    sub = Subscriber(broker.port)
    try:
        args = [*sum((["--source", s] for s in _sources(tiny_bench)), []), "--export", tiny_dgnet_export,
                "--threshold", "0.9", "--gallery", tmp_path / "g.db", "--events", f"mqtt://127.0.0.1:{broker.port}/{TOPIC}",
                "--device", "edge-1", "--json"]
        code, out, err = _demo(capsys, *args)
        assert code == 0, err
        summary = json.loads(out)
        produced = sum(summary["events"].values())
        assert produced > 0 and sub.wait(lambda: len(sub.events()) >= produced)
        events = sub.events()
        statuses = sub.statuses("edge-1")
    finally:
        sub.close()
    assert len(events) == produced and [e["seq"] for e in events] == list(range(1, produced + 1))
    assert {"new_identity", "enter", "leave"} <= {e["event"] for e in events}
    for e in events:
        check_message(e, "edge-1")
        assert e["camera"] in ("cam1", "cam2") and 0 <= e["time"] <= TINY_BENCH.seconds
    with Gallery(tmp_path / "g.db") as g:
        assert {e["identity"] for e in events} <= {i.id for i in g.identities()}
    online = [s for s, _ in statuses if s["state"] == "online"]
    assert online and online[0]["cameras"] == ["cam1", "cam2"] and online[0]["device"] == "edge-1"
    assert statuses[-1][0]["state"] == "offline" and statuses[-1][0]["reason"] == "closed"
    after = retained_status(broker.port, "edge-1")  # what a consumer that comes later is told
    assert after["state"] == "offline" and after["reason"] == "closed" and after["started"] == online[0]["started"]


def test_a_killed_app_is_offline_by_its_last_will(broker, tiny_bench):
    """kill -9 of a running demo: the broker publishes the retained "offline" (reason "lost")."""
    script = ("import sys\nfrom dgnet_edge.apps.camera.config import CameraConfig\n"
              "from dgnet_edge.apps.camera.live.run import run_demo\n"
              "run_demo(CameraConfig().replace(sources={'cameras': [sys.argv[1]], 'loop': True}, detector={'kind': 'public'},"
              " gallery={'location': None}, outputs={'events': sys.argv[2], 'device': 'edge-kill', 'show': False}))\n")
    sub = Subscriber(broker.port)
    proc = subprocess.Popen([sys.executable, "-c", script, _sources(tiny_bench)[0], f"mqtt://127.0.0.1:{broker.port}/{TOPIC}"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        assert sub.wait(lambda: any(s["state"] == "online" for s, _ in sub.statuses("edge-kill")), timeout=60), \
            proc.stderr.read().decode() if proc.poll() is not None else "no online status"
        assert proc.poll() is None, "the looping demo ended by itself"
        assert retained_status(broker.port, "edge-kill")["state"] == "online"  # what a consumer joining now is told
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(10)
        assert sub.wait(lambda: sub.statuses("edge-kill")[-1][0]["state"] == "offline", timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
        sub.close()
    status = sub.statuses("edge-kill")[-1][0]
    assert status["reason"] == "lost" and status["device"] == "edge-kill"
    assert retained_status(broker.port, "edge-kill")["state"] == "offline"


# -- outages ------------------------------------------------------------------------------------------
def test_broker_restarted_mid_run_events_are_buffered_and_delivered_in_order(persistent_broker, caplog):
    """The consumer holds a persistent session, so that the broker keeps what comes while it reconnects."""
    caplog.set_level(logging.INFO, logger="dgnet_edge.apps.camera.live.mqtt_events")
    sub = Subscriber(persistent_broker.port, client_id="consumer")
    sink = MqttEvents(MqttTarget("127.0.0.1", persistent_broker.port, TOPIC), "edge-r", backoff=(1, 2))
    try:
        sink.start(["cam1"])
        write_enters(sink, range(1, 21))
        assert wait_until(lambda: sink.counts()["delivered"] == 20), sink.counts()
        persistent_broker.stop()
        took = write_enters(sink, range(21, 71))  # the broker is away
        assert max(took) < 0.5, f"a write waited {max(took):.3f} s for the broker"  # microseconds, bar a busy machine
        time.sleep(1.5)  # the sink tries (and fails) to reconnect meanwhile
        assert sink.counts()["delivered"] == 20 and sink.counts()["waiting"] == 50
        persistent_broker.start()
        assert wait_until(lambda: sink.counts()["delivered"] == 70), sink.counts()
        write_enters(sink, range(71, 81))
        sink.close()
        assert sub.wait(lambda: set(seqs(sub.events())) >= set(range(1, 81)), timeout=30), seqs(sub.events())
    finally:
        sub.close()
    assert seqs(sub.events()) == list(range(1, 81))  # none lost, in order
    assert [e["track"] for e in sub.events()] == [e["seq"] for e in sub.events()]
    assert sink.counts() == {"delivered": 80, "dropped": 0, "waiting": 0, "in_flight": 0}
    assert "lost the broker" in caplog.text and "connected to" in caplog.text


class LinkProxy:
    """A TCP relay from a local port to the broker that can lose the link as a network does: in
    :meth:`cut`, what the device sends is swallowed (never reaches the broker, so never acknowledged),
    then its connections are closed and new ones refused until :meth:`restore`."""

    def __init__(self, upstream: int):
        self.upstream = upstream
        self.listener = socket.socket()
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(8)
        self.port = self.listener.getsockname()[1]
        self.up = True
        self.swallow = False
        self.links: list[socket.socket] = []
        self.lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                device, _ = self.listener.accept()
            except OSError:
                return
            if not self.up:
                device.close()
                continue
            broker = socket.create_connection(("127.0.0.1", self.upstream))
            with self.lock:
                self.links += [device, broker]
            threading.Thread(target=self._pump, args=(device, broker, True), daemon=True).start()
            threading.Thread(target=self._pump, args=(broker, device, False), daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket, from_device: bool) -> None:
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                if not (from_device and self.swallow):
                    dst.sendall(data)
        except OSError:
            pass
        for s in (src, dst):
            s.close()

    def cut(self) -> None:
        self.swallow = True

    def drop(self) -> None:
        self.up = False
        with self.lock:
            for s in self.links:
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
            self.links.clear()

    def restore(self) -> None:
        self.swallow = False
        self.up = True

    def close(self) -> None:
        self.drop()
        self.listener.close()


def test_events_in_flight_when_the_link_drops_are_sent_again_first(broker):
    """The link to the broker fails while 20 events are sent but not acknowledged: after the
    reconnect they are sent again before the buffered ones, so the consumer sees every event in order."""
    proxy = LinkProxy(broker.port)
    sub = Subscriber(broker.port)
    sink = MqttEvents(MqttTarget("127.0.0.1", proxy.port, TOPIC), "edge-l", backoff=(1, 1))
    try:
        sink.start(["cam1"])
        write_enters(sink, range(1, 11))
        assert wait_until(lambda: sink.counts()["delivered"] == 10), sink.counts()
        proxy.cut()
        write_enters(sink, range(11, 61))  # 20 go out and are lost, 30 wait for acknowledgements
        assert wait_until(lambda: sink.counts()["in_flight"] == 20 and sink.counts()["waiting"] == 50, timeout=5), sink.counts()
        proxy.drop()
        write_enters(sink, range(61, 81))  # while the device is cut off
        proxy.restore()
        assert wait_until(lambda: sink.counts()["delivered"] == 80), sink.counts()
        sink.close()
        assert sub.wait(lambda: set(seqs(sub.events())) >= set(range(1, 81)), timeout=20), seqs(sub.events())
    finally:
        sub.close()
        proxy.close()
    events = sub.events()
    assert [e["seq"] for e in events] == list(range(1, 81))  # none lost, none twice (none had reached the broker), in order


def test_a_full_buffer_drops_the_oldest_and_counts_them(persistent_broker, caplog):
    """The broker is away when the app starts (that does not stop it): 25 events into a buffer of 10."""
    caplog.set_level(logging.INFO, logger="dgnet_edge.apps.camera.live.mqtt_events")
    sub = Subscriber(persistent_broker.port, client_id="consumer")
    persistent_broker.stop()
    sink = MqttEvents(MqttTarget("127.0.0.1", persistent_broker.port, TOPIC), "edge-d", buffer=10, backoff=(1, 2))
    try:
        sink.start(["cam1"])
        took = write_enters(sink, range(1, 26))
        assert max(took) < 0.5
        assert sink.counts() == {"delivered": 0, "dropped": 15, "waiting": 10, "in_flight": 0}
        assert "dropping the oldest" in caplog.text
        assert wait_until(lambda: "cannot reach the broker" in caplog.text, timeout=10)
        persistent_broker.start()
        assert wait_until(lambda: sink.counts()["delivered"] == 10), sink.counts()
        sink.close()
        assert sub.wait(lambda: len(seqs(sub.events())) >= 10, timeout=30)
    finally:
        sub.close()
    assert seqs(sub.events()) == list(range(16, 26))  # the newest ten; the gap in seq shows the drop
    assert "15 dropped" in caplog.text


def test_a_broker_that_never_answers_holds_up_neither_writes_nor_close():
    """A listener that accepts the connection and never says a word (a hung broker, a firewall that
    swallows packets): the writes return at once and close gives up after its drain time."""
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        sink = MqttEvents(MqttTarget("127.0.0.1", silent.getsockname()[1], TOPIC), "edge-h", drain_s=1.0)
        sink.start(["cam1"])
        took = []
        for _ in range(20):
            took += write_enters(sink, range(len(took) + 1, len(took) + 6))
            time.sleep(0.05)
        assert max(took) < 0.5 and sink.counts() == {"delivered": 0, "dropped": 0, "waiting": 100, "in_flight": 0}
        t0 = time.monotonic()
        sink.close()
        assert time.monotonic() - t0 < 5.0


def test_an_unreachable_broker_does_not_stop_the_demo(tiny_bench, tiny_dgnet_export, tmp_path, capsys):
    port = free_port()  # nothing listens there
    args = [*sum((["--source", s] for s in _sources(tiny_bench)), []), "--export", tiny_dgnet_export,
            "--threshold", "0.9", "--gallery", tmp_path / "g.db", "--events", f"mqtt://127.0.0.1:{port}/{TOPIC}", "--json"]
    started = time.monotonic()
    code, out, err = _demo(capsys, *args)
    assert code == 0, err
    summary = json.loads(out)
    assert summary["frames"] == 2 * TINY_BENCH.frames and sum(summary["events"].values()) > 0
    flat = " ".join(err.split())
    assert "cannot reach the broker" in flat and "not delivered at close" in flat
    assert time.monotonic() - started < 120


# -- bad input ----------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "url, message",
    [
        ("http://127.0.0.1/site", "not an MQTT URL"),
        ("mqtt://127.0.0.1:1883", "no topic"),
        ("mqtt://127.0.0.1:1883/", "no topic"),
        ("mqtt://127.0.0.1:70000/site", "port must be a number"),
        ("mqtt://127.0.0.1:port/site", "port must be a number"),
        ("mqtt://127.0.0.1/site/#", "must be plain levels"),
        ("mqtt://user:secret@127.0.0.1:x/site", "user:***@"),
    ],
)
def test_a_bad_url_is_a_usage_error_before_any_source_opens(url, message, tmp_path, capsys):
    missing = tmp_path / "no-such-video.mp4"  # opening it would be another error
    code, _, err = _demo(capsys, "--source", missing, "--no-appearance", "--events", url)
    assert code == 2, err
    assert message in " ".join(err.split()) and "Traceback" not in err and "secret" not in err
    assert len(err.strip().splitlines()) <= 3  # one message (rich may wrap it)


def test_a_bad_device_name_is_a_usage_error(tmp_path, capsys):
    code, _, err = _demo(capsys, "--source", tmp_path / "x.mp4", "--no-appearance", "--device", "a/b",
                         "--events", "mqtt://127.0.0.1/site")
    assert code == 2 and "--device" in err


def test_without_paho_the_error_names_the_extra(tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "paho.mqtt.client", None)  # as if paho-mqtt were not installed
    code, _, err = _demo(capsys, "--source", tmp_path / "x.mp4", "--no-appearance", "--events", "mqtt://127.0.0.1/site")
    assert code == 1 and "pip install 'dgnet-edge[site]'" in err and "x.mp4" not in err


def test_credentials_reach_a_broker_that_requires_them(tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="dgnet_edge.apps.camera.live.mqtt_events")
    passwords = tmp_path / "passwords"
    tool = shutil.which("mosquitto_passwd")
    if tool is None:
        _unavailable("mosquitto_passwd is not installed")
    subprocess.run([tool, "-b", "-c", str(passwords), "edge", "s3cret:@"], check=True)
    b = Broker(tmp_path / "broker", password_file=passwords).start()
    try:
        good = MqttTarget.parse(f"mqtt://edge:s3cret%3A%40@127.0.0.1:{b.port}/{TOPIC}")
        assert good.password == "s3cret:@" and "s3cret" not in good.url
        sink = MqttEvents(good, "edge-c")
        sink.start(["cam1"])
        write_enters(sink, range(1, 4))
        assert wait_until(lambda: sink.counts()["delivered"] == 3), sink.counts()
        sink.close()
        wrong = MqttEvents(MqttTarget.parse(f"mqtt://edge:wrong@127.0.0.1:{b.port}/{TOPIC}"), "edge-w", backoff=(1, 1), drain_s=0.5)
        wrong.start(["cam1"])
        write_enters(wrong, range(1, 4))
        assert wait_until(lambda: "refused the connection" in caplog.text, timeout=10)
        assert wrong.counts() == {"delivered": 0, "dropped": 0, "waiting": 3, "in_flight": 0}
        wrong.close()
    finally:
        b.stop()


def test_tls_with_a_private_ca(tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="dgnet_edge.apps.camera.live.mqtt_events")
    openssl = shutil.which("openssl")
    if openssl is None:
        _unavailable("openssl is not installed")

    def run(*args: str) -> None:
        subprocess.run([openssl, *args], check=True, capture_output=True, cwd=tmp_path)

    run("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.pem", "-days", "2", "-subj", "/CN=test CA")
    run("req", "-newkey", "rsa:2048", "-nodes", "-keyout", "server.key", "-out", "server.csr", "-subj", "/CN=127.0.0.1")
    (tmp_path / "san.cnf").write_text("subjectAltName=IP:127.0.0.1\n")
    run("x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial", "-out", "server.pem",
        "-days", "2", "-extfile", "san.cnf")
    b = Broker(tmp_path / "broker", tls=(tmp_path / "ca.pem", tmp_path / "server.pem", tmp_path / "server.key")).start()
    try:
        sink = MqttEvents(MqttTarget.parse(f"mqtts://127.0.0.1:{b.port}/{TOPIC}?cafile={tmp_path / 'ca.pem'}"), "edge-t")
        sink.start(["cam1"])
        write_enters(sink, range(1, 4))
        assert wait_until(lambda: sink.counts()["delivered"] == 3), sink.counts()
        sink.close()
        untrusted = MqttEvents(MqttTarget.parse(f"mqtts://127.0.0.1:{b.port}/{TOPIC}"), "edge-u", drain_s=0.5)
        untrusted.start(["cam1"])  # the system's CAs do not know the private one
        write_enters(untrusted, range(1, 4))
        assert wait_until(lambda: "certificate" in caplog.text, timeout=10), caplog.text
        assert untrusted.counts()["delivered"] == 0
        untrusted.close()
    finally:
        b.stop()


# -- merged -------------------------------------------------------------------------------------------
def _track(track_id, feature):
    return Track(track_id=track_id, box=np.asarray((2, 2, 12, 30), np.float32), state=CONFIRMED, score=0.9,
                 feature=feature, time_since_update=0)


def test_the_resolver_follows_a_merge_and_forgets_a_deleted_identity(tmp_path):
    rng = np.random.default_rng(3)
    a, b, c = (l2_normalise(rng.normal(size=16)) for _ in range(3))
    with Gallery(tmp_path / "g.db", 16) as gallery, Gallery(tmp_path / "g.db") as cli_side:
        keep = gallery.enrol(a, name="alice")
        other = gallery.enrol(b)
        gone = gallery.enrol(c)
        resolver = IdentityResolver(gallery, 0.7, IdentityParams(template_interval_s=1.0, enrol_min_motion=0))
        events = resolver.update("cam1", 0.0, [_track(1, b), _track(2, c)]).events
        assert [(e.kind, e.identity) for e in events if e.kind == "enter"] == [("enter", other), ("enter", gone)]
        cli_side.merge(keep, other)  # `dgnet-edge gallery merge` while the app runs
        cli_side.delete(gone)
        assert resolver.update("cam1", 0.5, [_track(1, b), _track(2, c)]).events == []  # not yet looked
        events = resolver.update("cam1", 1.5, [_track(1, b), _track(2, c)]).events
        assert [(e.kind, e.track, e.keep, e.other, e.identity, e.name) for e in events] == \
            [("merged", 1, keep, other, keep, "alice")]
        assert resolver.identities("cam1") == {1: keep}  # the deleted one's track looks again
        events = resolver.close()
        assert [(e.kind, e.identity) for e in events] == [("leave", keep)]
        assert gallery.sightings(keep)[-1].last == 1.5  # the track's sighting went on under keep


class _Figure(Detector):
    """The box around the pixels far from the grey background: the one walking figure."""

    def detect(self, frame):
        ys, xs = np.nonzero(np.abs(frame.image.astype(np.int16) - 128).max(axis=2) > 50)
        return Detections.from_xyxy([[xs.min(), ys.min(), xs.max() + 1, ys.max() + 1]], [0.9])


def _colour_histograms(crops):
    feats = np.stack([np.concatenate([np.histogram(c[..., k], bins=8, range=(0, 256))[0] for k in range(3)])
                      for c in crops]).astype(np.float32)
    return l2_normalise(feats)


class _MergeOnce(Sink):
    """`dgnet-edge gallery merge` from another connection, once the app's first track has an identity."""

    def __init__(self, path: Path):
        self.path = path
        self.done: tuple[int, int] | None = None

    def write(self, result):
        enter = next((e for e in result.events if e.kind == "enter"), None)
        if enter is not None and self.done is None:
            with Gallery(self.path) as other_process:
                keep = other_process.enrol(l2_normalise(np.ones(24, np.float32)), name="alice")
                other_process.merge(keep, enter.identity)
            self.done = (keep, enter.identity)


def test_a_merge_while_the_app_runs_is_published(broker, tmp_path):
    """A person walks through one camera for 8 s; another process merges their identity into an
    enrolled one while the app runs: the app publishes `merged` and the track leaves under KEEP."""
    import cv2

    camera = tmp_path / "cam1"
    (camera / "img1").mkdir(parents=True)
    for i in range(120):  # 8 s at 15 frames/s
        image = np.full((240, 320, 3), 128, np.uint8)
        x = 10 + 2 * i
        image[60:130, x:x + 40] = (30, 30, 200)
        image[130:200, x + 5:x + 35] = (200, 60, 30)
        cv2.imwrite(str(camera / "img1" / f"{i + 1:06d}.jpg"), image)
    (camera / "seqinfo.ini").write_text("[Sequence]\nname=cam1\nimDir=img1\nframeRate=15\nseqLength=120\n"
                                        "imWidth=320\nimHeight=240\nimExt=.jpg\n")
    sub = Subscriber(broker.port)
    merge = _MergeOnce(tmp_path / "g.db")
    try:
        source = open_source(str(camera), "cam1")
        with Gallery(tmp_path / "g.db", feature_dim=24) as gallery:
            sink = MqttEvents(MqttTarget("127.0.0.1", broker.port, TOPIC), "edge-m")
            app = CameraApp([source], _Figure(), crop_features(_colour_histograms), IdentityResolver(gallery, 0.8),
                            sinks=[merge, sink])
            app.run()
        source.close()
        assert sub.wait(lambda: len(sub.events()) >= 4)
        events = sub.events()
    finally:
        sub.close()
    keep, other = merge.done
    assert [(e["event"], e["identity"]) for e in events] == [("new_identity", other), ("enter", other), ("merged", keep),
                                                              ("leave", keep)]
    merged = events[2]
    check_message(merged, "edge-m")
    assert (merged["keep"], merged["other"], merged["name"], merged["track"]) == (keep, other, "alice", events[1]["track"])
    assert 0 < merged["time"] - events[1]["time"] <= 2.5  # at the track's next template check
