"""Per-camera multi-person tracker: Kalman motion, IoU and appearance association, re-id on demand.

Each frame has two phases (ideas from SORT, DeepSORT, ByteTrack and BoT-SORT; the cameras are
static, so there is no camera-motion compensation)::

    wanted = tracker.predict(detections)     # indices of the detections that need features
    tracks = tracker.update(features)        # features of those detections, (len(wanted), D)

1. :meth:`Tracker.predict` moves every track one frame ahead (:mod:`.kalman`) and asks for the
   features of the detections whose match is in doubt (:meth:`Tracker._needs_feature`), so the
   caller embeds only those, in one batch.
2. :meth:`Tracker.update` matches by four optimal assignments (:func:`.matching.assign`), each over
   what the previous ones left:
   a. high-score detections to confirmed and lost tracks, by overlap and, where both sides have a
      feature, appearance (:meth:`Tracker._cost`);
   b. low-score detections to the tracks followed until the last frame, by IoU alone
      (ByteTrack's second stage: a partly hidden person scores low);
   c. re-id: tracks still unmatched to high-score detections by appearance alone, inside the
      Kalman gate, so that appearance never joins boxes far apart;
   d. tentative tracks to the high-score detections left, as in (a).
   Unmatched high-score detections start tentative tracks. A track's state changes on the track
   (:class:`TrackState`, as in deep_sort); ended tracks are reported in :attr:`Tracker.removed`.

A track's feature is the L2-normalised exponential moving average of its detections' features,
left unchanged when the detection is largely covered by another one (its crop then shows two
people).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum

import numpy as np

from dgnet_edge.apps.camera.defaults import REID_EVERY
from dgnet_edge.apps.camera.live.detections import Detections
from dgnet_edge.apps.camera.live.tracking.kalman import CHI2_95_3DOF, BoxKalman, boxes_of
from dgnet_edge.apps.camera.live.tracking.matching import assign
from dgnet_edge.boxes import box_iou, covered_fraction, l2_normalise, xyxy_to_cxcywh


class TrackState(str, Enum):
    """Where a track is in its life; a ``str`` so that states compare and print as their names."""

    TENTATIVE = "tentative"
    CONFIRMED = "confirmed"
    LOST = "lost"
    ENDED = "ended"


TENTATIVE, CONFIRMED, LOST, ENDED = TrackState.TENTATIVE, TrackState.CONFIRMED, TrackState.LOST, TrackState.ENDED


@dataclass(frozen=True)
class TrackerParams:
    """Tracker settings; one instance per camera or shared.

    Attributes:
        high_score: detections scoring at least this are matched first and may start tracks;
            those below (down to ``min_score``) only keep confirmed tracks alive.
        min_score: detections scoring less are ignored.
        new_track_score: the least score of a detection that starts a track.
        confirm_hits: consecutive matches that confirm a tentative track (which ends at its
            first miss).
        max_cost: the highest cost a matched pair may have: ``1 - IoU``, or, when both sides have
            a feature, ``(1 - w) (1 - IoU) + w * cosine distance``.
        low_score_iou: the least IoU that matches a low-score detection to a confirmed track.
        appearance: use appearance features at all; False gives the IoU + Kalman tracker.
        appearance_weight: weight ``w`` of the cosine distance in a pair's cost.
        max_appearance_distance: a track never takes a clearly seen detection whose feature is
            further than this (cosine distance) from its own.
        reid_distance: the largest cosine distance at which a track that overlaps no detection
            is matched by appearance alone (inside the Kalman gate).
        min_feature_aspect: detections narrower than this times their height (people cut by the
            frame's edge or an occluder) are never embedded: their crops show too little of them.
        gate_chi2: Kalman gate, squared Mahalanobis distance on centre and height around the
            prediction or where the person was last seen (people stop and turn back while
            hidden), inside which re-id by appearance alone may link a track and a detection
            (7.81 = 95 % of chi-square, 3 dof).
        ambiguity_iou: a track and a detection compete when their IoU exceeds this; a detection
            that two tracks compete for, or whose track competes for two, is embedded. Overlap
            and appearance together link only pairs that compete.
        sure_iou: a detection with one competing track is matched to it without re-id only when
            their IoU is at least this (a poorer fit is how one person taking over another's
            track looks, when the first walks out from behind the second).
        refresh_every: frames between feature refreshes of a confirmed track; 0 never refreshes.
        feature_momentum: weight of the old feature in the moving average.
        max_covered: a detection covered by another one over more than this fraction of its area
            does not update its track's feature.
        max_lost_s: seconds a lost track (a confirmed one that missed) is kept for
            re-association before it ends.
    """

    high_score: float = 0.5
    min_score: float = 0.1
    new_track_score: float = 0.6
    confirm_hits: int = 3
    max_cost: float = 0.7
    low_score_iou: float = 0.5
    appearance: bool = True
    appearance_weight: float = 0.5
    max_appearance_distance: float = 0.6
    reid_distance: float = 0.3
    min_feature_aspect: float = 0.15
    gate_chi2: float = CHI2_95_3DOF
    ambiguity_iou: float = 0.1
    sure_iou: float = 0.6
    refresh_every: int = REID_EVERY
    feature_momentum: float = 0.9
    max_covered: float = 0.3
    max_lost_s: float = 3.0


@dataclass(eq=False)
class Track:
    """One person followed on one camera.

    ``box`` is the matched detection's box, or the predicted box when unmatched this frame;
    ``det_index`` indexes this frame's detections, -1 when unmatched; ``hits`` counts its matches,
    ``time_since_update`` frames since its last match. Who the person is across cameras is not the
    track's business: the identity resolver keeps it.
    """

    track_id: int
    box: np.ndarray
    state: TrackState
    score: float
    feature: np.ndarray | None = None
    hits: int = 1
    time_since_update: int = 0
    det_index: int = -1
    mean: np.ndarray = field(default=None, repr=False)
    covariance: np.ndarray = field(default=None, repr=False)
    frames_since_feature: int = field(default=0, repr=False)
    seen: np.ndarray = field(default=None, repr=False)  # the last matched detection's box

    def is_confirmed(self) -> bool:
        return self.state == CONFIRMED

    def predicted(self, mean: np.ndarray, covariance: np.ndarray, box: np.ndarray) -> None:
        """The Kalman prediction for this frame: the track is unmatched until :meth:`matched`."""
        self.mean, self.covariance, self.box = mean, covariance, box
        self.time_since_update += 1
        self.frames_since_feature += 1
        self.det_index = -1

    def matched(self, mean: np.ndarray, covariance: np.ndarray, box: np.ndarray, score: float, det_index: int,
                feature: np.ndarray | None, momentum: float, confirm_hits: int) -> None:
        """Matched to detection ``det_index`` (``feature``: its feature, when it may update the
        track's); a tentative track is confirmed after ``confirm_hits`` hits, a lost one at once."""
        self.mean, self.covariance = mean, covariance
        self.box = box.astype(np.float32)
        self.seen = box.copy()
        self.score = score
        self.det_index = det_index
        self.time_since_update = 0
        self.hits += 1
        if feature is not None:
            if self.feature is None:
                self.feature = feature.copy()
            else:
                f = momentum * self.feature + (1 - momentum) * feature
                self.feature = (f / max(float(np.linalg.norm(f)), 1e-12)).astype(np.float32)
            self.frames_since_feature = 0
        if self.state != TENTATIVE or self.hits >= confirm_hits:
            self.state = CONFIRMED

    def missed(self, max_lost_frames: int) -> None:
        """Not matched this frame: a tentative track ends, a followed one is lost, and ends after
        ``max_lost_frames`` frames without a match."""
        ended = self.state == TENTATIVE or self.time_since_update > max_lost_frames
        self.state = ENDED if ended else LOST


@dataclass
class _Frame:
    """What :meth:`Tracker.predict` worked out for :meth:`Tracker.update`."""

    dets: Detections
    boxes: np.ndarray
    high: np.ndarray
    low: np.ndarray
    iou: np.ndarray
    in_gate: np.ndarray
    clear: np.ndarray
    wanted: np.ndarray


class Tracker:
    """Tracks people on one camera; call :meth:`predict` then :meth:`update` once per frame, in order."""

    def __init__(self, params: TrackerParams | None = None, fps: float = 15.0, kalman: BoxKalman | None = None):
        if fps <= 0:
            raise ValueError(f"fps must be positive, got {fps}")
        self.params = params or TrackerParams()
        self.fps = fps
        self.kalman = kalman or BoxKalman()
        self.max_lost_frames = max(1, round(self.params.max_lost_s * fps))
        self.tracks: list[Track] = []
        self.frame = 0
        self._next_id = 1
        self._removed: list[Track] = []
        self._this: _Frame | None = None

    @property
    def removed(self) -> list[Track]:
        """Confirmed tracks that ended for good in the last :meth:`update`."""
        return list(self._removed)

    def predict(self, dets: Detections) -> np.ndarray:
        """Start a frame with its detections: move the tracks one frame ahead; returns the indices
        of the detections whose appearance features :meth:`update` needs (empty when none does)."""
        p = self.params
        self.frame += 1
        self._removed = []
        boxes = dets.boxes.astype(np.float64)
        scores = dets.scores
        high = np.flatnonzero(scores >= p.high_score)
        low = np.flatnonzero((scores >= p.min_score) & (scores < p.high_score))

        self._predict()
        tracks = self.tracks
        pred = np.array([t.box for t in tracks], np.float64).reshape(-1, 4)
        iou = box_iou(pred, boxes)  # (T, N) over all detections
        if tracks and len(boxes):
            mean = np.stack([t.mean for t in tracks])
            cov = np.stack([t.covariance for t in tracks])
            # A lost person may have walked on (the prediction) or stopped or turned back where
            # they were last seen: the gate is the union of both, with the grown uncertainty.
            held = mean.copy()
            held[:, :4] = xyxy_to_cxcywh(np.stack([t.seen for t in tracks]))
            in_gate = np.minimum(self.kalman.gating_distance(mean, cov, boxes),
                                 self.kalman.gating_distance(held, cov, boxes)) <= p.gate_chi2
        else:
            in_gate = np.zeros((len(tracks), len(boxes)), bool)
        considered = np.concatenate([high, low])
        clear = np.ones(len(boxes), bool)
        clear[considered] = covered_fraction(boxes[considered]) <= p.max_covered
        width, height = boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]
        whole = width >= p.min_feature_aspect * height
        wanted = self._needs_feature(high[whole[high]], iou, in_gate, scores, clear) if p.appearance else np.zeros(0, np.intp)
        self._this = _Frame(dets, boxes, high, low, iou, in_gate, clear, wanted)
        return wanted

    def update(self, features: np.ndarray | None = None) -> list[Track]:
        """Finish the frame :meth:`predict` started: ``features`` are the (len(wanted), D) features
        of the detections it asked for (None when it asked for none); returns the live tracks (all
        states)."""
        if self._this is None:
            raise RuntimeError("Tracker.update needs Tracker.predict first, once per frame")
        f, self._this = self._this, None
        p, dets, boxes, scores = self.params, f.dets, f.boxes, f.dets.scores
        high, low, iou, in_gate, clear, wanted = f.high, f.low, f.iou, f.in_gate, f.clear, f.wanted
        by_det: dict[int, np.ndarray] = {}
        if len(wanted):
            out = np.zeros((0, 0), np.float32) if features is None else np.asarray(features, np.float32)
            if out.shape[0] != len(wanted):
                raise ValueError(f"{out.shape[0]} features given for the {len(wanted)} detections predict asked for")
            by_det = dict(zip(wanted.tolist(), l2_normalise(out)))
        features = by_det
        tracks = self.tracks

        established = np.array([t.state != TENTATIVE for t in tracks], bool)
        rows_main = np.flatnonzero(established)
        matched: dict[int, int] = {}  # track row -> detection index

        def unmatched(rows: np.ndarray) -> np.ndarray:
            return np.array([r for r in rows if r not in matched], np.intp)

        # Stage 1: high-score detections to confirmed and lost tracks, by overlap and appearance.
        m, _, free = assign(self._cost(rows_main, high, iou, features, clear), p.max_cost)
        matched.update({int(rows_main[r]): int(high[c]) for r, c in m})
        high_left = high[free]

        # Stage 2: low-score detections to the tracks followed until the last frame, by IoU alone.
        rows = np.array([r for r in unmatched(rows_main) if tracks[r].state == CONFIRMED], np.intp)
        if len(rows) and len(low):
            m, _, _ = assign(1.0 - iou[np.ix_(rows, low)], 1.0 - p.low_score_iou)
            matched.update({int(rows[r]): int(low[c]) for r, c in m})

        # Stage 3: re-id of the remaining tracks by appearance alone, inside the Kalman gate.
        rows = unmatched(rows_main)
        m, _, free = assign(self._reid_cost(rows, high_left, in_gate, features), p.reid_distance)
        matched.update({int(rows[r]): int(high_left[c]) for r, c in m})
        high_left = high_left[free]

        # Stage 4: remaining high-score detections to tentative tracks.
        rows = np.flatnonzero(~established)
        m, _, free = assign(self._cost(rows, high_left, iou, features, clear), p.max_cost)
        matched.update({int(rows[r]): int(high_left[c]) for r, c in m})
        starters = high_left[free]

        survivors: list[Track] = []
        for row, track in enumerate(tracks):
            det = matched.get(row)
            if det is not None:
                mean, cov = self.kalman.update(track.mean[None], track.covariance[None], boxes[det][None])
                track.matched(mean[0], cov[0], boxes[det], float(scores[det]), det, features.get(det) if clear[det] else None,
                              p.feature_momentum, p.confirm_hits)
                survivors.append(track)
                continue
            followed = track.state != TENTATIVE
            track.missed(self.max_lost_frames)
            if track.state != ENDED:
                survivors.append(track)
            elif followed:
                self._removed.append(track)

        new = [int(d) for d in starters if scores[d] >= p.new_track_score]
        if new:
            mean, cov = self.kalman.initiate(boxes[new])
            for k, d in enumerate(new):
                feature = features.get(d) if clear[d] else None
                survivors.append(Track(
                    track_id=self._next_id, box=dets.boxes[d].copy(), state=TENTATIVE, score=float(scores[d]),
                    feature=None if feature is None else feature.copy(), det_index=d,
                    mean=mean[k], covariance=cov[k], seen=boxes[d].copy(),
                ))
                self._next_id += 1
        if p.confirm_hits <= 1:
            for t in survivors:
                if t.state == TENTATIVE:
                    t.state = CONFIRMED
        self.tracks = survivors
        return list(survivors)

    def _predict(self) -> None:
        if not self.tracks:
            return
        mean = np.stack([t.mean for t in self.tracks])
        cov = np.stack([t.covariance for t in self.tracks])
        lost = np.array([t.state == LOST for t in self.tracks], bool)
        mean[lost, 6:8] = 0.0  # a lost box keeps its size rather than shrinking or growing unseen
        mean, cov = self.kalman.predict(mean, cov)
        predicted = boxes_of(mean)
        for k, t in enumerate(self.tracks):
            t.predicted(mean[k], cov[k], predicted[k])

    def _needs_feature(self, candidates: np.ndarray, iou: np.ndarray, in_gate: np.ndarray, scores: np.ndarray,
                       clear: np.ndarray) -> np.ndarray:
        """Which of the ``candidates`` (high-score, whole-person detections) to embed this frame: those
        no confirmed or lost track clearly claims (they start or extend a tentative track, or may
        bring a lost track back), those that two tracks or two detections compete for, those that
        fit their one track poorly (IoU below ``sure_iou``), and, every ``refresh_every`` frames,
        the one detection of a confirmed track whose feature is due. Slivers (narrower than
        ``min_feature_aspect`` of their height) are never embedded."""
        p = self.params
        tracks = self.tracks
        if len(candidates) == 0:
            return np.zeros(0, np.intp)
        established = np.array([t.state != TENTATIVE for t in tracks], bool)
        followed = np.array([t.state != LOST for t in tracks], bool)
        known = established & np.array([t.feature is not None for t in tracks], bool)
        near = iou[:, candidates] > p.ambiguity_iou  # (T, C)
        # A lost track claims a detection only where the overlap alone could give it to it.
        strong = iou[:, candidates] > 1.0 - p.max_cost
        claims = near & established[:, None] & (strong | followed[:, None])
        per_det = claims.sum(axis=0)
        per_track = (iou > p.ambiguity_iou).sum(axis=1)
        wanted = []
        for k, d in enumerate(candidates):
            if per_det[k] == 0:
                # Starts or extends a tentative track, or may bring back a track by re-id.
                if scores[d] >= p.new_track_score or near[:, k].any() or (in_gate[:, d] & known).any():
                    wanted.append(d)
                continue
            row = int(np.flatnonzero(claims[:, k])[0])
            if per_det[k] > 1 or per_track[row] > 1 or iou[row, d] < p.sure_iou:
                wanted.append(d)  # competed for, or a poor fit to its only track
                continue
            track = tracks[row]
            due = track.feature is None or (p.refresh_every > 0 and track.frames_since_feature >= p.refresh_every)
            if due and clear[d]:
                wanted.append(d)
        return np.asarray(wanted, np.intp)

    def _distances(self, rows: np.ndarray, cols: np.ndarray, features: dict[int, np.ndarray]):
        """Cosine distances between the tracks and detections that both have features, and where they go."""
        with_track = [k for k, r in enumerate(rows) if self.tracks[r].feature is not None]
        with_det = [k for k, c in enumerate(cols) if int(c) in features]
        if not with_track or not with_det:
            return None, None
        track_features = np.stack([self.tracks[rows[k]].feature for k in with_track])
        det_features = np.stack([features[int(cols[k])] for k in with_det])
        return 1.0 - track_features @ det_features.T, np.ix_(with_track, with_det)

    def _cost(self, rows: np.ndarray, cols: np.ndarray, iou: np.ndarray, features: dict[int, np.ndarray],
              clear: np.ndarray) -> np.ndarray:
        """(len(rows), len(cols)) overlap costs, with appearance where both sides have it; inf forbids.

        Appearance only links boxes that overlap. A clear view of someone else (appearance too far)
        forbids a pair however well the boxes overlap: that is one person walking into the place of
        another. A crop that another detection covers only weighs in through the cost.
        """
        p = self.params
        pair_iou = iou[np.ix_(rows, cols)]
        cost = 1.0 - pair_iou
        distance, block = self._distances(rows, cols, features)
        if distance is None:
            return cost
        fused = (1 - p.appearance_weight) * cost[block] + p.appearance_weight * distance
        seen_clearly = clear[cols[block[1].ravel()]][None, :]
        ok = (pair_iou[block] > p.ambiguity_iou) & ((distance <= p.max_appearance_distance) | ~seen_clearly)
        cost[block] = np.where(ok, fused, np.inf)
        return cost

    def _reid_cost(self, rows: np.ndarray, cols: np.ndarray, in_gate: np.ndarray,
                   features: dict[int, np.ndarray]) -> np.ndarray:
        """(len(rows), len(cols)) appearance distances inside the Kalman gate; inf elsewhere."""
        cost = np.full((len(rows), len(cols)), np.inf)
        distance, block = self._distances(rows, cols, features)
        if distance is not None:
            cost[block] = np.where(in_gate[np.ix_(rows, cols)][block], distance, np.inf)
        return cost
