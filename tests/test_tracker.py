"""Kalman filter, assignment and the per-camera tracker on small synthetic scenes."""

from __future__ import annotations

import numpy as np
import pytest

from dgnet_edge.apps.camera.live.detections import Detections
from dgnet_edge.apps.camera.live.tracking import matching
from dgnet_edge.apps.camera.live.tracking.kalman import CHI2_95_3DOF, BoxKalman, boxes_of
from dgnet_edge.apps.camera.live.tracking.tracker import CONFIRMED, LOST, TENTATIVE, Tracker, TrackerParams

DIM = 16


def box_at(x: float, y: float = 150.0, w: float = 40.0, h: float = 100.0) -> list[float]:
    return [x - w / 2, y - h / 2, x + w / 2, y + h / 2]


def step(tracker: Tracker, dets: Detections, embed) -> list:
    """One frame in the tracker's two phases: it asks for the features it needs, ``embed`` gives them."""
    wanted = tracker.predict(dets)
    return tracker.update(embed(wanted) if len(wanted) else None)


class Scene:
    """Feeds a tracker frames of (person, centre x) and answers ``embed`` with per-person features."""

    def __init__(self, params: TrackerParams, noise: float = 0.05, seed: int = 0):
        self.tracker = Tracker(params, fps=15)
        self.rng = np.random.default_rng(seed)
        self.noise = noise
        self.calls: list[list[int]] = []

    def step(self, people: list[tuple[int, float]]) -> dict[int, int]:
        """Person -> track id of the confirmed track matched to that person's detection this frame."""
        who = [p for p, _ in people]

        def embed(indices: np.ndarray) -> np.ndarray:
            self.calls.append([int(i) for i in indices])
            f = np.zeros((len(indices), DIM), np.float32)
            f[np.arange(len(indices)), [who[i] for i in indices]] = 1.0
            f += self.rng.normal(0, self.noise, f.shape).astype(np.float32)
            return f / np.linalg.norm(f, axis=1, keepdims=True)

        dets = Detections.from_xyxy([box_at(x) for _, x in people], [0.9] * len(people))
        tracks = step(self.tracker, dets, embed)
        return {who[t.det_index]: t.track_id for t in tracks if t.state == CONFIRMED and t.det_index >= 0}


# Kalman filter


def test_kalman_follows_linear_motion():
    kf = BoxKalman()
    start = np.array([box_at(100.0)])
    mean, cov = kf.initiate(start)
    for k in range(1, 30):
        mean, cov = kf.predict(mean, cov)
        mean, cov = kf.update(mean, cov, np.array([box_at(100.0 + 4.0 * k, 150.0 + 1.0 * k)]))
    assert mean[0, 4] == pytest.approx(4.0, abs=0.1)
    assert mean[0, 5] == pytest.approx(1.0, abs=0.1)
    mean, cov = kf.predict(mean, cov)
    np.testing.assert_allclose(boxes_of(mean)[0], box_at(100.0 + 4.0 * 30, 150.0 + 30), atol=0.5)
    # The next true box is inside the gate, a box 60 px away is not.
    near, far = kf.gating_distance(mean, cov, np.array([box_at(220.0, 180.0), box_at(280.0, 180.0)]))[0]
    assert near < CHI2_95_3DOF < far


def test_kalman_is_vectorised_and_uncertainty_shrinks_with_updates():
    kf = BoxKalman()
    boxes = np.array([box_at(100.0), box_at(300.0, h=200.0, w=80.0)])
    mean, cov = kf.initiate(boxes)
    first = cov[:, 0, 0].copy()
    for _ in range(5):
        mean, cov = kf.predict(mean, cov)
        mean, cov = kf.update(mean, cov, boxes)
    assert np.all(cov[:, 0, 0] < first)
    # Noise scales with the box: the twice-as-large box has four times the variance.
    assert cov[1, 0, 0] == pytest.approx(4 * cov[0, 0, 0], rel=1e-6)
    np.testing.assert_allclose(boxes_of(mean), boxes, atol=1e-3)


# Assignment


@pytest.mark.parametrize("solver", ["lap", "scipy"])
def test_assign_leaves_out_pairs_over_the_limit(monkeypatch, solver):
    if solver == "scipy":
        monkeypatch.setattr(matching, "lap", None)
    elif matching.lap is None:
        pytest.skip("lap is not installed")
    cost = np.array([[0.1, 0.9, np.inf], [0.2, 0.3, 0.95], [np.inf, np.inf, 0.99]])
    matches, rows, cols = matching.assign(cost, 0.5)
    assert sorted(map(tuple, matches.tolist())) == [(0, 0), (1, 1)]
    assert rows.tolist() == [2] and cols.tolist() == [2]
    matches, rows, cols = matching.assign(np.zeros((0, 3)), 0.5)
    assert len(matches) == 0 and cols.tolist() == [0, 1, 2]


# Tracker


def meet_and_turn_back(frames: int = 50) -> list[list[tuple[int, float]]]:
    """Person 0 walks right, person 1 left; they meet on one spot, stand, and each walks back."""
    out = []
    x0, x1 = 120.0, 480.0
    for f in range(frames):
        if f < 20:
            x0, x1 = x0 + 9, x1 - 9
        elif f >= 23:
            x0, x1 = x0 - 9, x1 + 9
        out.append([(0, x0), (1, x1)])
    return out


def ids_after(scene: Scene, frames) -> list[dict[int, int]]:
    return [scene.step(people) for people in frames]


def test_appearance_keeps_ids_where_iou_alone_swaps_them():
    frames = meet_and_turn_back()
    iou_only = ids_after(Scene(TrackerParams(appearance=False)), frames)
    with_appearance = ids_after(Scene(TrackerParams()), frames)
    before = with_appearance[15]
    assert iou_only[15] == before and len(set(before.values())) == 2
    # Without appearance the momentum of each track carries it onto the other person.
    assert iou_only[-1] == {0: before[1], 1: before[0]}
    assert with_appearance[-1] == before
    assert all(ids == before for ids in with_appearance[15:] if len(ids) == 2)


def test_short_occlusion_keeps_the_id():
    scene = Scene(TrackerParams())
    ids = [scene.step([(0, 100.0 + 6 * f)]) for f in range(15)]
    for f in range(15, 23):  # missed for 8 frames
        scene.step([])
        assert scene.tracker.tracks[0].state == LOST
    later = [scene.step([(0, 100.0 + 6 * f)]) for f in range(23, 30)]
    assert later[0] == ids[-1] == {0: 1}
    assert all(ids == {0: 1} for ids in later)


def test_reid_is_asked_only_for_detections_that_need_it():
    scene = Scene(TrackerParams(refresh_every=5, confirm_hits=3))
    far = [(0, 100.0), (1, 500.0)]
    for _ in range(14):
        scene.step(far)
    # Frames 1-3: both detections start or extend tentative tracks. Confirmed on frame 3, their
    # features are refreshed on frames 8 and 13, every 5 frames.
    assert scene.calls == [[0, 1]] * 5
    scene.calls.clear()
    # A newcomer far from both tracks is embedded alone on frame 15 (no refresh is due).
    scene.step(far + [(2, 300.0)])
    assert scene.calls == [[2]]
    scene.calls.clear()
    # Two people whose boxes overlap are both embedded: the tracks compete for them.
    scene.step([(0, 290.0), (1, 500.0), (2, 300.0)])
    assert scene.calls == [[0, 2]]


def test_no_reid_without_appearance():
    scene = Scene(TrackerParams(appearance=False))
    ids = ids_after(scene, [[(0, 100.0 + 5 * f), (1, 400.0)] for f in range(20)])
    assert scene.calls == []
    assert ids[-1] == {0: 1, 1: 2}


def test_empty_frames():
    tracker = Tracker(TrackerParams(), fps=15)

    def never(indices):
        raise AssertionError("embed called on an empty frame")

    assert step(tracker, Detections.empty(), never) == []
    scene = Scene(TrackerParams())
    for f in range(5):
        scene.step([(0, 100.0 + 3 * f)])
    calls = len(scene.calls)
    tracks = step(scene.tracker, Detections.empty(), lambda i: pytest.fail("embed called"))
    assert [t.state for t in tracks] == [LOST] and tracks[0].det_index == -1
    assert len(scene.calls) == calls


def test_lost_tracks_expire_and_are_reported_once():
    scene = Scene(TrackerParams(max_lost_s=1.0))  # 15 frames at 15 fps
    for f in range(6):
        scene.step([(0, 100.0 + 3 * f)])
    scene.step([(0, 400.0)])  # a tentative track for a one-frame false positive
    step(scene.tracker, Detections.empty(), lambda i: pytest.fail("embed called"))
    removed_at = []
    for k in range(20):
        tracks = step(scene.tracker, Detections.empty(), lambda i: pytest.fail("embed called"))
        if scene.tracker.removed:
            removed_at.append((k, [t.track_id for t in scene.tracker.removed]))
            assert tracks == []
    assert removed_at == [(13, [1])]  # 16 frames without a match (the first was frame 7)


def test_lost_track_returns_by_appearance_but_not_far_away():
    scene = Scene(TrackerParams(max_lost_s=5.0))
    for f in range(10):
        scene.step([(0, 200.0)])
    for _ in range(20):
        scene.step([])
    # Back near where it was lost: same id although the boxes barely overlap.
    assert scene.step([(0, 230.0)]) == {0: 1}
    # Lost again, and a person with the same look appears across the frame: a new track.
    for _ in range(3):
        scene.step([])
    scene.step([(0, 600.0)])
    states = {t.track_id: t.state for t in scene.tracker.tracks}
    assert states == {1: LOST, 2: TENTATIVE}


def test_tracker_rejects_wrong_number_of_features():
    tracker = Tracker(TrackerParams())
    with pytest.raises(ValueError, match="features"):
        step(tracker, Detections.from_xyxy([box_at(100.0)]), lambda i: np.zeros((2, DIM), np.float32))


def test_a_person_who_turns_back_while_hidden_keeps_the_id():
    scene = Scene(TrackerParams())
    for f in range(15):
        scene.step([(0, 100.0 + 6 * f)])  # last seen at x = 184, walking right
    for _ in range(10):
        scene.step([])  # hidden; the prediction walks on to x = 250
    # Back at x = 170, walking left: far from the prediction, near where they were last seen.
    back = [scene.step([(0, 170.0 - 6 * k)]) for k in range(5)]
    assert back[-1] == {0: 1}
    assert [t.track_id for t in scene.tracker.tracks] == [1]
