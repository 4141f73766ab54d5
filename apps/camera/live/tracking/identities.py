"""Giving tracks identities from the gallery, across cameras, and keeping the gallery up to date.

Per camera and frame, ``resolver.update(camera, time, tracks, image)`` returns the identities of
the camera's tracks (track id -> gallery identity; the resolver is the one place that holds them)
and the events (:mod:`..record`). A track missing from ``tracks`` (the tracker returns every live
one, lost ones too) has left; :meth:`IdentityResolver.close` ends every open track at the end of a
run; :meth:`IdentityResolver.enrol_track` names the person on a track (the app's enrol key).

How a track gets its identity: a confirmed track with a fresh feature and no identity is pending.
A camera's pending tracks are matched to gallery identities together by an optimal one-to-one
assignment on the scores; an identity held by another track of that camera that is not lost is not
on offer, so one person is never two tracks at once in one view. An identity taken from a lost
track of the same camera (the tracker lost the person and started a new track) leaves that lost
track. :class:`IdentityParams` says when a pending track decides, and when its feature becomes a
template.

Identities gone from the gallery: another process (``dgnet-edge gallery merge`` or ``delete``, or
another device sharing the gallery) may remove an identity a track holds; the resolver learns it
when it next considers the track's feature as a template. A merge moves the identity's sightings to
the identity kept, so the track follows its open sighting there (a ``Merged`` event per track that
held the merged identity). After a delete the track is pending again.

Static things are not people: the cameras are fixed, so a detector's false positive on a sign, a
poster or a coat on a hook is a box that never moves. Such a track never makes a new identity, nor
takes one by waiting (``enrol_min_motion``, ``static_after_s``). It is still tracked, and a person
who stood still and then walks away is decided like anyone else when they move.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Dict, List, NamedTuple

import numpy as np

from dgnet_edge.apps.camera.live.record import Enter, Event, Leave, Merged, NewIdentity, Reidentified
from dgnet_edge.apps.camera.live.tracking.matching import assign
from dgnet_edge.apps.camera.live.tracking.tracker import CONFIRMED, LOST, Track
from dgnet_edge.apps.camera.storage.gallery_base import GalleryBase, GalleryError
from dgnet_edge.boxes import crop, l2_normalise

log = logging.getLogger(__name__)


@dataclass
class _TrackState:
    """What the resolver remembers of one track."""

    track: Track
    first: float
    last: float
    identity: int | None = None
    pending: int = 0  # frames seen with a fresh feature while waiting for an identity
    sighting: int | None = None
    name: str | None = None
    template_checked: float = float("-inf")  # when its feature was last considered as a template
    flushed: float = float("-inf")
    origin: np.ndarray | None = None  # box centre and height when the track was first matched to a detection
    moved: bool = False  # the box has moved or grown enrol_min_motion (of its height) from the origin
    born: float = float("nan")  # when the resolver first saw the track (``first`` moves to when it takes an identity)

    def __post_init__(self) -> None:
        if math.isnan(self.born):
            self.born = self.first

    def observe(self, box: np.ndarray, min_motion: float) -> None:
        """Record a matched box: the first is the origin; ``moved`` once a box's centre is
        ``min_motion`` box heights from the origin's, or its height has changed by that fraction
        (someone walking towards or away from the camera)."""
        height = max(float(box[3] - box[1]), 1.0)
        here = np.array([(box[0] + box[2]) / 2, (box[1] + box[3]) / 2, height], np.float64)
        if self.origin is None:
            self.origin = here
        shift = float(np.hypot(*(here[:2] - self.origin[:2]))) / height
        growth = abs(height - self.origin[2]) / self.origin[2]
        if not self.moved and max(shift, growth) >= min_motion:
            self.moved = True


class Resolved(NamedTuple):
    """What :meth:`IdentityResolver.update` decided for one frame of one camera."""

    identities: Dict[int, int]  # track id -> gallery identity, for the camera's tracks that have one
    events: List[Event]


def _fresh(track: Track) -> bool:
    """The track was matched to a detection this frame and has a feature."""
    return track.feature is not None and track.time_since_update == 0


@dataclass(frozen=True)
class IdentityParams:
    """How the resolver decides identities (the camera config's ``identities`` section).

    Attributes:
        decide_after: frames with a fresh feature a pending track may wait for a confident score;
            then it takes its assigned identity at or over ``threshold``, or, with none, becomes
            a new identity.
        confident_margin: a score this far over ``threshold`` decides at once.
        template_interval_s: least time between two templates from one track (a track's feature
            becomes a template only while it still matches its identity).
        novelty: a feature within this of an identity's score 1 is a near-copy, not a template.
        sighting_flush_s: how often the end of open sightings is written (and at leave).
        enrol_min_motion: a track makes a new identity, or takes an identity by waiting
            (``decide_after``), only once its box centre has moved this many box heights from where
            it was first seen, or its height has changed by this fraction (a walking person covers
            a quarter of their height within a second or so; a box on a sign jitters by a few
            percent). 0 turns the static rule off.
        static_after_s: a track that has not moved ``enrol_min_motion`` box heights after this
            many seconds is static (a sign, a poster): it takes no identity, not even a gallery
            match, until it moves.
    """

    decide_after: int = 3
    confident_margin: float = 0.1
    template_interval_s: float = 2.0
    novelty: float = 0.05
    sighting_flush_s: float = 5.0
    enrol_min_motion: float = 0.25
    static_after_s: float = 5.0

    def __post_init__(self) -> None:
        if self.decide_after < 1:
            raise ValueError(f"decide_after must be >= 1, got {self.decide_after}")
        if self.enrol_min_motion < 0 or self.static_after_s < 0:
            raise ValueError(f"enrol_min_motion and static_after_s must be >= 0, got {self.enrol_min_motion}, {self.static_after_s}")


class IdentityResolver:
    """Identities for the tracks of every camera, from and into one gallery (SQLite or PostgreSQL).

    Args:
        gallery: the gallery (its feature size is the embedder's).
        threshold: cosine score from which a track is taken to be a gallery identity.
        params: how identities are decided (:class:`IdentityParams`).
    """

    def __init__(self, gallery: GalleryBase, threshold: float, params: IdentityParams | None = None):
        self.gallery = gallery
        self.threshold = threshold
        self.params = params or IdentityParams()
        self._states: dict[str, dict[int, _TrackState]] = {}

    # -- the frame loop ----------------------------------------------------------------------------
    def update(self, camera: str, time: float, tracks: list[Track], image: np.ndarray | None = None) -> Resolved:
        """Decide identities for this frame's pending tracks of ``camera``; record templates and sightings.

        ``image`` (BGR) gives the template thumbnails; without it templates are stored without one.
        """
        states = self._states.setdefault(camera, {})
        current = {track.track_id for track in tracks}
        events = []
        with self.gallery.transaction():  # this frame's writes: one commit
            for gone in [s.track for tid, s in states.items() if tid not in current]:
                events += self.close_track(camera, gone)  # the tracker returns every live track
            pending = []
            for track in tracks:
                state = states.get(track.track_id)
                if state is None:
                    state = states[track.track_id] = _TrackState(track, time, time)
                state.track = track
                if track.time_since_update == 0:
                    state.last = time
                    state.observe(track.box, self.params.enrol_min_motion)
                if state.identity is None and track.state == CONFIRMED and _fresh(track) and not self.is_static(state, time):
                    state.pending += 1
                    pending.append(state)
            if pending:
                events += self._decide(camera, time, pending, image)
            due = [s for s in states.values() if s.identity is not None and _fresh(s.track)
                   and time - s.template_checked >= self.params.template_interval_s]
            events += self._add_templates(camera, time, due, image)
            self._flush_sightings(time, states.values())
        return Resolved(self.identities(camera), events)

    def identities(self, camera: str) -> dict[int, int]:
        """Track id -> gallery identity, for ``camera``'s tracks that have one."""
        return {tid: s.identity for tid, s in self._states.get(camera, {}).items() if s.identity is not None}

    def identity_of(self, camera: str, track_id: int) -> int | None:
        state = self._states.get(camera, {}).get(track_id)
        return None if state is None else state.identity

    def is_static(self, state: _TrackState, time: float) -> bool:
        """Whether the track has stayed put (under ``enrol_min_motion``) for ``static_after_s``."""
        return self.params.enrol_min_motion > 0 and not state.moved and time - state.born >= self.params.static_after_s

    def _may_move_on(self, state: _TrackState) -> bool:
        """Whether an unsure track may be decided by waiting (a new identity, or an unsure match): it
        has moved, or the static rule is off. A confident match needs no motion."""
        return state.moved or self.params.enrol_min_motion == 0

    def close_track(self, camera: str, track: Track, time: float | None = None) -> list[Event]:
        """The tracker dropped ``track`` for good: its sighting ends at its last update ("leave")."""
        state = self._states.get(camera, {}).pop(track.track_id, None)
        if state is None or state.identity is None:
            return []
        end = state.last if time is None else time
        if state.sighting is not None:
            self.gallery.extend_sightings({state.sighting: end})
        return [Leave(end, camera, state.track.track_id, state.identity, state.name, first=state.first)]

    def close(self) -> list[Event]:
        """Every track still open leaves (end of the run)."""
        events = []
        for camera, states in self._states.items():
            for state in list(states.values()):
                events += self.close_track(camera, state.track)
        return events

    def enrol_track(self, camera: str, time: float, track: Track, name: str,
                    image: np.ndarray | None = None) -> list[Event]:
        """Name the person on ``track`` (the app's enrol key): its identity is renamed, or, for a track
        with no identity yet, a new identity is made from its feature."""
        state = self._states.get(camera, {}).get(track.track_id)
        if state is not None and state.identity is not None:
            self.gallery.rename(state.identity, name)
            state.name = name
            return []
        if track.feature is None:
            raise ValueError(f"track {track.track_id} of {camera} has no feature yet: wait until it has been embedded")
        if state is None:
            state = self._states.setdefault(camera, {})[track.track_id] = _TrackState(track, time, time)
        return self._create(camera, time, state, l2_normalise(track.feature[None])[0], image, name)

    # -- decisions ---------------------------------------------------------------------------------
    def _decide(self, camera: str, time: float, pending: list[_TrackState], image: np.ndarray | None) -> list[Event]:
        states = self._states[camera]
        features = l2_normalise(np.stack([s.track.feature for s in pending]))
        ids, scores = self.gallery.identity_scores(features)
        held = {s.identity: s for s in states.values() if s.identity is not None}
        offered = np.array([i not in held or held[i].track.state == LOST for i in ids], bool)
        cost = np.where(offered[None], 1.0 - scores, np.inf)
        pairs, _, _ = assign(cost, 1.0 - self.threshold)
        assigned = {int(r): int(c) for r, c in pairs}
        events = []
        for row, state in enumerate(pending):
            col = assigned.get(row)
            if col is not None:
                score = float(scores[row, col])
                if score >= self.threshold + self.params.confident_margin or (state.pending >= self.params.decide_after and self._may_move_on(state)):
                    identity = int(ids[col])
                    taken = held.get(identity)
                    if taken is not None:
                        events += self.close_track(camera, taken.track)
                    events += self._take(camera, time, state, identity, score)
            elif state.pending >= self.params.decide_after and self._may_move_on(state):
                events += self._create(camera, time, state, features[row], image)
        return events

    def _take(self, camera: str, time: float, state: _TrackState, identity: int, score: float) -> list[Event]:
        previous = self.gallery.last_sighting(identity)
        try:
            state.sighting = self.gallery.open_sighting(identity, camera, state.track.track_id, time)
        except GalleryError:  # deleted meanwhile by another process: stay pending
            return []
        self._hold(state, identity, time)
        found = Reidentified(time, camera, state.track.track_id, identity, state.name, score=round(score, 4),
                             previous_camera=previous.camera if previous else None,
                             previous_time=previous.last if previous else None)
        return [found, Enter(time, camera, state.track.track_id, identity, state.name)]

    def _create(self, camera: str, time: float, state: _TrackState, feature: np.ndarray,
                image: np.ndarray | None, name: str | None = None) -> list[Event]:
        track_id = state.track.track_id
        piece = crop(image, state.track.box)  # the one crop of a new person: thumbnail, and synthesis's input
        try:
            with self.gallery.transaction():
                # unless_matches: another device sharing the gallery may have enrolled this person a moment ago
                identity = self.gallery.enrol(feature, piece, name=name, camera=camera, time=time,
                                              source=f"track:{camera}:{track_id}", unless_matches=self.threshold)
                sighting = self.gallery.open_sighting(identity, camera, track_id, time)
        except GalleryError as e:  # a shared gallery away for long: no ids left to make one with; stay pending
            log.debug("track %s:%d waits for an identity: %s", camera, track_id, e)
            return []
        state.sighting = sighting
        self._hold(state, identity, time)
        state.template_checked = time
        return [NewIdentity(time, camera, track_id, identity, state.name, crop=piece),
                Enter(time, camera, track_id, identity, state.name)]

    def _hold(self, state: _TrackState, identity: int, time: float) -> None:
        state.identity = identity
        state.first = time
        state.flushed = time
        state.name = self._name(identity)

    def _name(self, identity: int) -> str | None:
        try:
            return self.gallery.identity(identity).name
        except GalleryError:
            return None

    # -- gallery upkeep ----------------------------------------------------------------------------
    def _add_templates(self, camera: str, time: float, states: list[_TrackState], image: np.ndarray | None) -> list[Event]:
        if not states:
            return []
        features = l2_normalise(np.stack([s.track.feature for s in states]))
        ids, scores = self.gallery.identity_scores(features, include=[s.identity for s in states])
        column = {int(i): c for c, i in enumerate(ids)}
        events: list[Event] = []
        for row, state in enumerate(states):
            col = column.get(state.identity)
            if col is None:  # the identity was merged away or deleted by another process
                events += self._identity_gone(camera, time, state, ids, scores[row])
                continue
            state.template_checked = time
            score = scores[row, col]
            if not self.threshold <= score <= 1.0 - self.params.novelty:
                continue
            try:
                self.gallery.add_template(state.identity, features[row], crop(image, state.track.box), camera=camera,
                                          time=time, source=f"track:{camera}:{state.track.track_id}")
            except GalleryError:
                self._release(state)
        return events

    def _identity_gone(self, camera: str, time: float, state: _TrackState, ids: np.ndarray, scores: np.ndarray,
                       candidates: int = 3) -> list[Event]:
        """The track's identity is no longer in the gallery. If one of the ``candidates`` identities
        the track's feature scores best on now holds the track's open sighting, the identity was
        merged into it: the track follows (a Merged event). Else it was deleted: the track is pending."""
        other = state.identity
        for col in np.argsort(-scores)[:candidates]:
            keep = int(ids[col])
            try:
                moved = any(s.id == state.sighting for s in self.gallery.sightings(keep))
            except GalleryError:  # gone as well
                continue
            if moved:
                state.identity, state.name = keep, self._name(keep)
                return [Merged(time, camera, state.track.track_id, keep, state.name, keep=keep, other=other)]
        self._release(state)
        return []

    def _release(self, state: _TrackState) -> None:
        """Forget a track's identity (gone from the gallery); the track is pending again."""
        state.identity = None
        state.sighting = None
        state.pending = 0

    def _flush_sightings(self, time: float, states: Iterable[_TrackState]) -> None:
        due = [s for s in states if s.sighting is not None and time - s.flushed >= self.params.sighting_flush_s]
        if due:
            self.gallery.extend_sightings({s.sighting: s.last for s in due})
            for s in due:
                s.flushed = time
