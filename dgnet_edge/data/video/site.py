"""The plan of a video bench: cameras over one site, who walks where and when, as pure functions of the seed.

The site is a chain of street cameras that do not overlap: leaving camera ``k`` on its right edge
leads (after a walk of a few seconds) to the left edge of camera ``k + 1``, and the other way
round. The streets between cameras have side turnings, so not everyone who leaves towards the
next camera reaches it, and people also come and go through doorways in the building fronts at
the back of a view: some are seen by one camera only. Each camera looks down on a flat ground
plane: a point ``D`` metres ahead and ``X`` metres to the side appears at column
``cx + f·X/D`` and row ``horizon + f·H/D``. The horizon and camera height are chosen so that the
building fronts of the camera's scene stand at the back of the walkable ground and a person is
80-250 pixels tall at 640x480.

A person's visit to a camera is a polyline of keyframes ``(t, X, D)`` in seconds and metres;
standing still is two keyframes at the same place. Some people come back to a camera they left a
while before: about a minute later in long benches, and within the bench in short ones.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from dgnet_edge.data.synth.identity import Identity, sample_identity
from dgnet_edge.data.synth.scene import Camera, make_camera
from dgnet_edge.errors import UsageError

# Seed streams of the video bench (the crop world uses 1-6; these keep the bench's people, cameras
# and paths apart from the crop world's, so an embedder trained on that world meets new people).
IDENTITY_STREAM, ROUTE_STREAM, VIEW_STREAM = 101, 103, 104

NOMINAL_HEIGHT_M = 1.75  # the height of a person of identity.height 1.0
NEAR_PERSON_PX = 245.0  # a nominal person at the nearest walkable depth, at 480 rows
FAR_PERSON_PX = 85.0  # ... at the farthest walkable depth
SIDES = ("left", "right", "far")  # where a visit enters or leaves a view: side streets or a doorway


@dataclass(frozen=True)
class VideoSpec:
    """The options of a video bench: ``cameras`` views of ``width`` x ``height`` at ``fps`` for ``seconds``."""

    cameras: int = 4
    seconds: float = 60.0
    fps: float = 15.0
    width: int = 640
    height: int = 480
    seed: int = 0

    def __post_init__(self) -> None:
        problems = []
        if not 1 <= self.cameras <= 16:
            problems.append("cameras must be between 1 and 16")
        if not 1.0 <= self.seconds <= 3600.0:
            problems.append("seconds must be between 1 and 3600")
        if not 1.0 <= self.fps <= 60.0:
            problems.append("fps must be between 1 and 60")
        if not (160 <= self.width <= 1920 and 120 <= self.height <= 1080):
            problems.append("width must be in 160..1920 and height in 120..1080")
        if self.seed < 0:
            problems.append("seed must be >= 0")
        if problems:
            raise UsageError("invalid video bench: " + "; ".join(problems))

    @property
    def frames(self) -> int:
        return max(1, round(self.seconds * self.fps))


@dataclass(frozen=True)
class Occluder:
    """A pillar (of an arcade, so tall it leaves the view), planter or notice board standing at (``x``, ``depth``) metres."""

    kind: str
    x: float
    depth: float
    width: float
    height: float
    colour: tuple[int, int, int]


@dataclass(frozen=True)
class View:
    """One camera of the site: the crop world's camera (scene, light, quality) and its ground geometry.

    ``focal`` is in pixels; ``horizon`` is the image row of the vanishing line; ``camera_height`` in
    metres; people walk between ``near`` and ``far`` metres ahead; ``base_row`` is the row where the
    scene's building fronts meet the ground; ``scene_seed`` picks the scene's crop.
    """

    name: str
    camera: Camera
    width: int
    height: int
    focal: float
    horizon: float
    camera_height: float
    near: float
    far: float
    base_row: float
    scene_seed: int
    travel_right: float  # seconds from this view's right edge to the next view's left edge
    occluders: tuple[Occluder, ...]

    def project(self, x: float, depth: float) -> tuple[float, float]:
        """Image column and row of the ground point ``x`` metres aside, ``depth`` metres ahead."""
        return self.width / 2 + self.focal * x / depth, self.horizon + self.focal * self.camera_height / depth

    def half_width(self, depth: float) -> float:
        """Metres from the centre line to the image edge at ``depth``."""
        return self.width / 2 * depth / self.focal


@dataclass(frozen=True)
class Visit:
    """One pass of a person through one view: keyframes ``times`` (s), ``xs`` and ``depths`` (m)."""

    camera: int
    times: tuple[float, ...]
    xs: tuple[float, ...]
    depths: tuple[float, ...]
    enter: str
    leave: str

    @property
    def start(self) -> float:
        return self.times[0]

    @property
    def end(self) -> float:
        return self.times[-1]


@dataclass(frozen=True)
class Person:
    """A global identity (id >= 1), its look, walking speed and its visits in time order."""

    gid: int
    identity: Identity
    speed: float
    stride: float
    visits: tuple[Visit, ...]
    look_alike_of: int | None

    @property
    def cameras(self) -> tuple[int, ...]:
        return tuple(sorted({v.camera for v in self.visits}))


@dataclass(frozen=True)
class SitePlan:
    spec: VideoSpec
    views: tuple[View, ...]
    people: tuple[Person, ...]


# -- cameras ---------------------------------------------------------------------------------------
def _scene_base_row(camera: Camera, scene_seed: int, height: int) -> float:
    """The image row where the scene's building fronts meet the pavement, for the crop ``scene.background`` takes.

    ``scene._panorama`` draws its horizon as its first random number, and ``scene.background``
    draws the crop's top row as its first; both are reproduced here (tests check this against
    the pixels).
    """
    pano_h = round(height * 1.15)
    pano_base = int(pano_h * np.random.default_rng(camera.scene_seed).uniform(0.4, 0.62))
    top = int(np.random.default_rng(scene_seed).integers(0, pano_h - height + 1))
    return float(pano_base - top)


def _occluders(rng: np.random.Generator, view: View) -> tuple[Occluder, ...]:
    items = []
    for _ in range(int(rng.integers(1, 4))):
        kind = str(rng.choice(["pillar", "planter", "board"], p=[0.35, 0.4, 0.25]))
        depth = float(rng.uniform(view.near + 0.8, view.near + 0.6 * (view.far - view.near)))
        x = float(rng.uniform(-0.75, 0.75) * view.half_width(depth))
        width, height = {"pillar": (0.45, 8.0), "planter": (1.4, 0.9), "board": (1.0, 1.9)}[kind]
        colour = tuple(int(c) for c in rng.integers(40, 200, 3))
        items.append(Occluder(kind, x, depth, width * float(rng.uniform(0.85, 1.2)), height * float(rng.uniform(0.9, 1.1)), colour))
    return tuple(items)


def make_view(spec: VideoSpec, index: int) -> View:
    """Camera ``index`` (0-based) of the site made with ``spec.seed``."""
    # Cameras 100 and up of the crop world's seed: that world has at most 99, so none is shared.
    camera = make_camera(spec.seed, 100 + index)
    rng = np.random.default_rng([spec.seed, VIEW_STREAM, index])
    scene_seed = int(rng.integers(2**31))
    h = spec.height
    base = _scene_base_row(camera, scene_seed, h)
    # Rows scale with the image; persons are FAR_PERSON_PX..NEAR_PERSON_PX tall at 480 rows.
    near_px, far_px = NEAR_PERSON_PX * h / 480, FAR_PERSON_PX * h / 480
    near_feet, far_feet = 0.975 * h, max(base + 0.03 * h, 0.36 * h)
    # person height is proportional to (feet row - horizon): solve for the horizon row
    horizon = (far_feet * near_px - near_feet * far_px) / (near_px - far_px)
    near = float(rng.uniform(3.6, 4.4))
    focal = near_px * near / NOMINAL_HEIGHT_M
    camera_height = (near_feet - horizon) * near / focal
    far = focal * camera_height / (far_feet - horizon)
    view = View(
        name=f"cam{index + 1}",
        camera=camera,
        width=spec.width,
        height=h,
        focal=focal,
        horizon=horizon,
        camera_height=camera_height,
        near=near,
        far=far,
        base_row=base,
        scene_seed=scene_seed,
        travel_right=float(rng.uniform(4.0, 10.0)),
        occluders=(),
    )
    return dataclasses.replace(view, occluders=_occluders(rng, view))


# -- paths -----------------------------------------------------------------------------------------
def _edge_point(rng: np.random.Generator, view: View, side: str) -> tuple[float, float]:
    """A ground point just outside the view on ``side`` (or in a doorway at the back for "far")."""
    if side == "far":
        depth = view.far * float(rng.uniform(0.96, 1.0))
        return float(rng.uniform(-0.7, 0.7)) * view.half_width(depth), depth
    depth = float(rng.uniform(view.near * 1.05, view.far * 0.95))
    x = view.half_width(depth) + 0.6
    return (x if side == "right" else -x), depth


def _inner_point(rng: np.random.Generator, view: View) -> tuple[float, float]:
    depth = float(rng.uniform(view.near * 1.05, view.far * 0.9))
    return float(rng.uniform(-0.8, 0.8)) * view.half_width(depth), depth


def _walk(rng: np.random.Generator, view: View, camera: int, start: float, speed: float, enter: str, leave: str) -> Visit:
    """A pass from ``enter`` to ``leave`` through one or two turning points, maybe stopping at one."""
    points = [_edge_point(rng, view, enter)]
    points += [_inner_point(rng, view) for _ in range(int(rng.integers(1, 3)))]
    points.append(_edge_point(rng, view, leave))
    times, xs, depths = [start], [points[0][0]], [points[0][1]]
    for i, (x, d) in enumerate(points[1:], start=1):
        step = float(np.hypot(x - xs[-1], d - depths[-1]))
        times.append(times[-1] + step / (speed * float(rng.uniform(0.9, 1.1))))
        xs.append(x)
        depths.append(d)
        if i < len(points) - 1 and rng.random() < 0.3:  # stop for a while (look at a phone, wait)
            times.append(times[-1] + float(rng.uniform(1.5, 5.0)))
            xs.append(x)
            depths.append(d)
    return Visit(camera, tuple(times), tuple(xs), tuple(depths), enter, leave)


def _route(rng: np.random.Generator, cameras: int) -> tuple[list[int], int]:
    """The cameras a person passes, in order, and the walking direction along the chain (+1 or -1)."""
    lengths = np.array([0.45, 0.35, 0.2])[: min(3, cameras)]
    length = int(rng.choice(len(lengths), p=lengths / lengths.sum())) + 1
    direction = 1 if rng.random() < 0.5 else -1
    first = int(rng.integers(0, cameras - length + 1))
    route = list(range(first, first + length))
    return (route if direction > 0 else route[::-1]), direction


def _travel(views: tuple[View, ...], a: int, b: int, rng: np.random.Generator) -> float:
    return views[min(a, b)].travel_right * float(rng.uniform(0.9, 1.35))


def _person_visits(rng: np.random.Generator, views: tuple[View, ...], start: float, speed: float) -> list[Visit]:
    """The visits of one walk along the chain, from the first camera of its route to the last."""
    route, direction = _route(rng, len(views))
    towards, backwards = ("right", "left") if direction > 0 else ("left", "right")
    visits, t = [], start
    for k, cam in enumerate(route):
        first, last = k == 0, k == len(route) - 1
        if not first:
            enter = backwards
        elif len(route) == 1:
            enter = str(rng.choice(SIDES, p=[0.4, 0.4, 0.2]))
        else:  # from a side street behind, or out of a doorway
            enter = str(rng.choice([backwards, "far"]))
        if not last:
            leave = towards
        elif len(route) == 1:
            leave = str(rng.choice([s for s in SIDES if s != enter]))
        else:
            leave = str(rng.choice([towards, "far"]))
        visit = _walk(rng, views[cam], cam, t, speed, enter, leave)
        visits.append(visit)
        if not last:
            t = visit.end + _travel(views, cam, route[k + 1], rng)
    return visits


def _return_visit(rng: np.random.Generator, spec: VideoSpec, views: tuple[View, ...], person_visits: list[Visit], speed: float) -> Visit:
    """The person comes back into their first camera, about a minute after leaving it (sooner in short benches)."""
    first = person_visits[0]
    away = min(float(rng.uniform(50.0, 70.0)), spec.seconds * float(rng.uniform(0.45, 0.6)))
    start = max(first.end + away, person_visits[-1].end + 2.0)
    enter = str(rng.choice(SIDES, p=[0.4, 0.4, 0.2]))
    leave = str(rng.choice([s for s in SIDES if s != enter]))
    return _walk(rng, views[first.camera], first.camera, start, speed, enter, leave)


def _look(rng: np.random.Generator, seed: int, gid: int, earlier: list[Identity]) -> tuple[Identity, int | None]:
    """The identity's look; one in five wears the same two garment colours as someone earlier."""
    identity = sample_identity(np.random.default_rng([seed, IDENTITY_STREAM, gid]))
    if earlier and rng.random() < 0.2:
        j = int(rng.integers(len(earlier)))
        other = earlier[j]
        return dataclasses.replace(identity, upper_colour=other.upper_colour, lower_colour=other.lower_colour), j + 1
    return identity, None


def _visible_in_bench(visits: list[Visit], seconds: float) -> bool:
    return any(v.end > 0.0 and v.start < seconds for v in visits)


def plan_site(spec: VideoSpec) -> SitePlan:
    """Cameras, people and their paths of the bench ``spec``; the same spec always gives the same plan."""
    views = tuple(make_view(spec, i) for i in range(spec.cameras))
    rng = np.random.default_rng([spec.seed, ROUTE_STREAM])
    # One person entering the site every 5 s per camera (people who pass several cameras make the
    # views busier); starts before 0 put people in view on the first frame.
    arrivals = max(3, round((spec.seconds + 12.0) * spec.cameras / 5.0))
    starts = np.sort(rng.uniform(-12.0, spec.seconds, arrivals))
    walks = []
    for start in starts.tolist():
        speed = float(rng.uniform(1.0, 1.6))
        walks.append((speed, _person_visits(rng, views, start, speed)))
    # Some of those who come early come back into their first camera later; enough of them that
    # the bench holds a few re-entries (a return that would start too late to be seen is redrawn
    # for someone else).
    wanted = max(2, round(0.12 * arrivals))
    for k in rng.permutation(np.flatnonzero((starts > -6.0) & (starts < 0.25 * spec.seconds))).tolist():
        if wanted == 0:
            break
        speed, visits = walks[k]
        back = _return_visit(rng, spec, views, visits, speed)
        if back.start < spec.seconds - 4.0:
            visits.append(back)
            wanted -= 1
    people: list[Person] = []
    looks: list[Identity] = []
    for speed, visits in walks:
        if not _visible_in_bench(visits, spec.seconds):
            continue
        gid = len(people) + 1
        identity, alike = _look(rng, spec.seed, gid, looks)
        looks.append(identity)
        people.append(Person(gid, identity, speed, float(rng.uniform(0.28, 0.4)), tuple(visits), alike))
    return SitePlan(spec, views, tuple(people))


@lru_cache(maxsize=8)
def cached_plan(spec: VideoSpec) -> SitePlan:
    """:func:`plan_site`, once per process (render workers plan the site themselves)."""
    return plan_site(spec)
