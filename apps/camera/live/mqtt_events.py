"""Events to an MQTT broker: ``--events mqtt://[USER:PASSWORD@]HOST[:PORT]/TOPIC`` (``mqtts://`` for TLS).

Topics, for ``TOPIC`` from the URL and ``DEVICE`` from ``--device``::

    TOPIC/events/DEVICE   each event message (docs/events.md), QoS 1, in the order the events happened
    TOPIC/status/DEVICE   retained, QoS 1: "online" (start time, cameras) on each connect; "offline" on
                          a clean close, and as the last will when the device vanishes

One events topic per device, because MQTT keeps the order of messages within a topic; a consumer
subscribes to ``TOPIC/events/+`` for every device.

The frame loop never waits for the broker. :meth:`MqttEvents.write` puts the messages in a buffer
and returns; a sender thread hands them to paho, whose network thread connects, reconnects with
backoff (``backoff`` seconds, doubling) and sends. At most ``window`` events are with paho at a time
(sent, waiting for the broker's PUBACK); after a reconnect paho sends those again first, and only
once they are acknowledged do the buffered ones follow, so events arrive in order. While the broker
is away the buffer holds up to ``buffer`` events; when it is full the oldest is dropped (counted,
logged, and visible to consumers as a gap in ``seq``). QoS 1 is at least once: an event the broker
had taken before the link broke may come twice (same ``device`` and ``seq``).

paho-mqtt (2.x) is the ``site`` extra: ``pip install 'dgnet-edge[site]'``; it is imported when a
sink is made, never at import.
"""

from __future__ import annotations

import json
import logging
import os
import re
import sys
import threading
import time as clock
import urllib.parse
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dgnet_edge.apps.camera.live.outputs import Sink
from dgnet_edge.apps.camera.live.record import SCHEMA_VERSION, EventMessages, FrameResult
from dgnet_edge.errors import BackendUnavailableError, UsageError

log = logging.getLogger(__name__)

PORTS = {"mqtt": 1883, "mqtts": 8883}
URL_FORM = "mqtt://[USER:PASSWORD@]HOST[:PORT]/TOPIC (mqtts:// for TLS, ?cafile=CA.pem for a private CA)"
URL_LIKE = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")
INSTALL_HINT = "pip install 'dgnet-edge[site]' (or pip install 'paho-mqtt>=2')"


def is_url(spec: str | Path) -> bool:
    """Whether an ``--events`` value is a URL (``scheme://...``) rather than a file name."""
    return isinstance(spec, str) and bool(URL_LIKE.match(spec))


def require_paho() -> Any:
    """The ``paho.mqtt.client`` module, or a one-line error naming the extra."""
    try:
        import paho.mqtt.client as mqtt
    except ImportError:
        raise BackendUnavailableError(f"--events mqtt:// needs paho-mqtt 2: {INSTALL_HINT}") from None
    if not hasattr(mqtt, "CallbackAPIVersion"):
        raise BackendUnavailableError(f"--events mqtt:// needs paho-mqtt 2, found an older one: {INSTALL_HINT}")
    return mqtt


@dataclass(frozen=True)
class MqttTarget:
    """A broker and the topic under which a device publishes, from an ``--events`` URL."""

    host: str
    port: int
    topic: str
    tls: bool = False
    username: str | None = None
    password: str | None = None
    cafile: Path | None = None

    @property
    def url(self) -> str:
        """The URL without the password, for messages."""
        user = "" if self.username is None else f"{urllib.parse.quote(self.username)}{':***' if self.password else ''}@"
        return f"{'mqtts' if self.tls else 'mqtt'}://{user}{self.host}:{self.port}/{self.topic}"

    @classmethod
    def parse(cls, url: str) -> MqttTarget:
        """The target of ``url``; UsageError (one line, the password hidden) for anything else."""
        parts = urllib.parse.urlsplit(url)
        shown = url if parts.password is None else url.replace(f":{parts.password}@", ":***@", 1)

        def bad(why: str) -> UsageError:
            return UsageError(f"--events {shown}: {why}; give {URL_FORM}, or a file name for JSON lines")

        scheme = parts.scheme.lower()
        if scheme not in PORTS:
            raise bad(f"{scheme}:// is not an MQTT URL")
        try:
            port = parts.port
        except ValueError:  # not a number, or out of range
            port = 0
        if port == 0 or not re.match(r"^(\[[^\]]*\]|[^:]*)(:\d+)?$", parts.netloc.rpartition("@")[2]):
            raise bad("the port must be a number from 1 to 65535")
        if not parts.hostname:
            raise bad("no broker host")
        topic = urllib.parse.unquote(parts.path[1:])
        if not topic:
            raise bad("no topic")
        if any(c in topic for c in "+#\0") or "" in topic.split("/") or topic.startswith("$"):
            raise bad(f"topic {topic!r} must be plain levels (no '+', '#', leading '$' or empty level)")
        query = urllib.parse.parse_qs(parts.query, keep_blank_values=True)
        unknown = sorted(set(query) - {"cafile"})
        if unknown or parts.fragment:
            raise bad(f"unknown option {(unknown or ['#' + parts.fragment])[0]!r} (only ?cafile=CA.pem)")
        cafile = Path(query["cafile"][-1]).expanduser() if "cafile" in query else None
        if cafile is not None and scheme != "mqtts":
            raise bad("?cafile is for mqtts://")
        if cafile is not None and not cafile.is_file():
            raise bad(f"the CA file {cafile} does not exist")
        return cls(parts.hostname, port or PORTS[scheme], topic, tls=scheme == "mqtts",
                   username=None if parts.username is None else urllib.parse.unquote(parts.username),
                   password=None if parts.password is None else urllib.parse.unquote(parts.password), cafile=cafile)


class MqttEvents(Sink):
    """Event messages to an MQTT broker, with the device's retained status (see the module docstring).

    Args:
        target: the broker and topic.
        device: the device name, in every message and in the status topic.
        buffer: events kept while the broker is away; beyond it the oldest are dropped.
        window: events with paho at a time, waiting for the broker's acknowledgement.
        backoff: (first, longest) seconds between attempts to reach the broker; each failure doubles.
        keepalive_s: the MQTT keepalive; the broker sends the last will about 1.5 times this after
            the device stops answering (at once when its connection closes, as on a crash).
        drain_s: how long :meth:`close` waits for the buffered events to reach the broker.
    """

    what = "events"

    def __init__(self, target: MqttTarget, device: str, *, buffer: int = 10_000, window: int = 20,
                 backoff: tuple[int, int] = (1, 30), keepalive_s: int = 15, drain_s: float = 5.0):
        self._mqtt = require_paho()
        self.target = target
        self.device = device
        self.buffer, self.window, self.keepalive_s, self.drain_s = buffer, window, keepalive_s, drain_s
        self.events_topic = f"{target.topic}/events/{device}"
        self.status_topic = f"{target.topic}/status/{device}"
        self.started = round(clock.time(), 3)
        self.cameras: list[str] = []
        self.messages = EventMessages(device)
        self.delivered = 0  # events the broker acknowledged
        self.dropped = 0  # events dropped from a full buffer
        self._cond = threading.Condition()
        self._queue: deque[bytes] = deque()  # messages not yet handed to paho, oldest first
        self._sent: dict[int, str] = {}  # paho message id -> "event" | "status", until acknowledged
        self._acked_early: set[int] = set()  # acknowledged before the sender recorded the message id
        self._connected = False
        self._resending = False  # after a reconnect, until the events paho resends are acknowledged
        self._status_due = False
        self._stopping = False
        self._problem = ""  # the last connection problem logged (each is logged once)
        self._drop_told = False  # the first drop of an outage is logged (the count at reconnect and close)
        self._client = self._make_client(backoff)
        self._sender = threading.Thread(target=self._send_loop, name=f"mqtt-events-{device}", daemon=True)

    # -- the frame loop's side -----------------------------------------------------------------------
    def start(self, cameras: Sequence[str]) -> None:
        """Start connecting (in paho's thread: the app goes on whether or not the broker answers)."""
        self.cameras = list(cameras)
        self._client.connect_async(self.target.host, self.target.port, keepalive=self.keepalive_s)
        self._client.loop_start()
        self._sender.start()

    def write(self, result: FrameResult) -> None:
        if not result.events:
            return
        payloads = [json.dumps(self.messages.message(e), separators=(",", ":")).encode() for e in result.events]
        with self._cond:
            for payload in payloads:
                if len(self._queue) >= self.buffer:
                    self._queue.popleft()
                    self.dropped += 1
                    if not self._drop_told:
                        self._drop_told = True
                        log.warning("events: the buffer of %d events is full (broker %s away): dropping the oldest",
                                    self.buffer, self.target.url)
                self._queue.append(payload)
            self._cond.notify_all()

    def close(self) -> list[Path]:
        """Send what is buffered (up to ``drain_s``), publish "offline" and disconnect."""
        if not self._sender.is_alive():
            return []
        with self._cond:
            self._cond.wait_for(lambda: not self._queue and not self._in_flight(), timeout=self.drain_s)
            self._stopping = True
            left = len(self._queue) + self._in_flight()
            connected = self._connected
            self._cond.notify_all()
        self._sender.join()
        if connected:
            info = self._client.publish(self.status_topic, self._status("offline", "closed"), qos=1, retain=True)
            try:
                info.wait_for_publish(timeout=1.0)
            except (RuntimeError, ValueError):
                pass  # the link broke just now: the broker sends the last will instead
        self._client.disconnect()
        self._client.loop_stop()
        if left or self.dropped:
            log.warning("events: %d delivered to %s, %d dropped (buffer full), %d not delivered at close (broker away)",
                        self.delivered, self.target.url, self.dropped, left)
        else:
            log.info("events: %d delivered to %s", self.delivered, self.target.url)
        return []

    def counts(self) -> dict[str, int]:
        """Events delivered (acknowledged by the broker), dropped from a full buffer, and waiting: in
        the buffer, or ``in_flight`` (with paho, not yet acknowledged)."""
        with self._cond:
            in_flight = self._in_flight()
            return {"delivered": self.delivered, "dropped": self.dropped, "waiting": len(self._queue) + in_flight,
                    "in_flight": in_flight}

    def _in_flight(self) -> int:
        return sum(kind == "event" for kind in self._sent.values())

    # -- paho ----------------------------------------------------------------------------------------
    def _make_client(self, backoff: tuple[int, int]) -> Any:
        mqtt = self._mqtt
        client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"dgnet-edge-{self.device}-{os.getpid()}",
                             clean_session=True)
        client.reconnect_delay_set(*backoff)
        client.max_inflight_messages_set(self.window)
        if self.target.username is not None:
            client.username_pw_set(self.target.username, self.target.password)
        if self.target.tls:
            client.tls_set(ca_certs=None if self.target.cafile is None else str(self.target.cafile))
        client.will_set(self.status_topic, self._status("offline", "lost"), qos=1, retain=True)
        client.on_connect = self._on_connect
        client.on_connect_fail = self._on_connect_fail
        client.on_disconnect = self._on_disconnect
        client.on_publish = self._on_publish
        return client

    def _status(self, state: str, reason: str | None = None) -> bytes:
        status: dict[str, Any] = {"schema": SCHEMA_VERSION, "device": self.device, "state": state,
                                  "started": self.started, "wall": round(clock.time(), 3)}
        if state == "online":
            status["cameras"] = self.cameras
        else:
            status["reason"] = reason
        return json.dumps(status, separators=(",", ":")).encode()

    def _report(self, problem: str) -> None:
        if problem != self._problem:
            self._problem = problem
            log.warning("events: %s; events are kept (up to %d) until it answers", problem, self.buffer)

    def _on_connect(self, client: Any, userdata: Any, flags: Any, reason: Any, properties: Any) -> None:
        if reason.is_failure:
            self._report(f"the broker {self.target.url} refused the connection: {reason}")
            return
        with self._cond:
            self._connected = True
            self._resending = self._in_flight() > 0  # paho sends these again, right after this callback
            self._status_due = True
            self._drop_told = False
            waiting = len(self._queue) + self._in_flight()
            self._cond.notify_all()
        if self._problem:
            log.info("events: connected to %s again; %d events to send, %d dropped so far", self.target.url, waiting, self.dropped)
        else:
            log.info("events: connected to %s", self.target.url)
        self._problem = ""

    def _on_connect_fail(self, client: Any, userdata: Any) -> None:
        error = sys.exc_info()[1]  # paho calls this while it handles the connect's OSError
        self._report(f"cannot reach the broker {self.target.url}" + (f" ({error})" if error is not None else ""))

    def _on_disconnect(self, client: Any, userdata: Any, flags: Any, reason: Any, properties: Any) -> None:
        with self._cond:
            self._connected = False
            stopping = self._stopping
        if not stopping:
            self._report(f"lost the broker {self.target.url} ({reason})")

    def _on_publish(self, client: Any, userdata: Any, mid: int, reason: Any, properties: Any) -> None:
        with self._cond:
            kind = self._sent.pop(mid, None)
            if kind is None:
                self._acked_early.add(mid)
            self._acked(kind)
            self._cond.notify_all()

    def _acked(self, kind: str | None) -> None:
        if kind == "event":
            self.delivered += 1
        if not self._in_flight():
            self._resending = False

    # -- the sender thread: the one caller of paho's publish while the sink runs ---------------------
    def _send_loop(self) -> None:
        while True:
            with self._cond:
                self._cond.wait_for(self._may_send)
                if self._stopping:
                    return
                if self._status_due:
                    self._status_due = False
                    topic, payload, retain, kind = self.status_topic, self._status("online"), True, "status"
                else:
                    topic, payload, retain, kind = self.events_topic, self._queue.popleft(), False, "event"
            info = self._client.publish(topic, payload, qos=1, retain=retain)  # never under our lock: see _on_publish
            with self._cond:
                if info.mid in self._acked_early:
                    self._acked_early.discard(info.mid)
                    self._acked(kind)
                else:
                    self._sent[info.mid] = kind

    def _may_send(self) -> bool:
        if self._stopping or (self._connected and self._status_due):
            return True
        return self._connected and not self._resending and bool(self._queue) and self._in_flight() < self.window
