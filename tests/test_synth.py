"""The synthetic world: deterministic pictures, Market-1501 layout, visible attributes, atomic writes."""

from __future__ import annotations

import dataclasses
from collections import defaultdict
from pathlib import Path

import numpy as np
import pytest

from dgnet_edge.data.market1501 import Market1501, parse_market_name
from dgnet_edge.data.synth import WorldSpec, make_camera, render_image, world_identity, write_world
from dgnet_edge.data.synth import identity as attrs
from dgnet_edge.data.synth import world as world_module
from dgnet_edge.data.synth.figure import FACINGS, Pose, draw_person
from dgnet_edge.errors import DatasetError, UsageError

SPEC = WorldSpec(train_ids=6, test_ids=6, cameras=3, images_per_camera=3, height=64, width=32, seed=11)


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("synth") / "world"
    write_world(root, SPEC, workers=1)
    return root


def _files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def _names(root: Path, folder: str) -> list[tuple[int, int]]:
    return [parse_market_name(p) for p in sorted((root / folder).iterdir())]


# -- single pictures -----------------------------------------------------------------------------
def test_same_seed_gives_identical_bytes() -> None:
    person, camera = world_identity(5, 17), make_camera(5, 2)
    first = render_image(person, camera, [5, 17, 2, 0]).to_jpeg()
    assert first == render_image(person, camera, [5, 17, 2, 0]).to_jpeg()
    assert first != render_image(person, camera, [5, 17, 2, 1]).to_jpeg()


@pytest.mark.parametrize(("height", "width"), [(256, 128), (64, 32), (128, 64), (100, 40)])
def test_images_have_the_requested_size(height: int, width: int) -> None:
    image = render_image(world_identity(0, 1), make_camera(0, 0), 7, height, width)
    assert image.pixels.shape == (height, width, 3)
    assert image.pixels.dtype == np.uint8


# -- every attribute value is drawn, and drawn differently ---------------------------------------
BASE = attrs.Identity(
    height=1.0, build="average", skin="medium", hair_colour="brown", hair_style="short", upper_colour="red",
    upper_pattern="stripes", upper_second="white", sleeves="long", lower_colour="denim", lower_kind="trousers",
    shoe_colour="black", bag="shoulder bag", bag_colour="yellow", bag_side="left",
)
ATTRIBUTE_VALUES = {
    "build": attrs.BUILDS,
    "skin": tuple(attrs.SKIN),
    "hair_colour": tuple(attrs.HAIR),
    "hair_style": attrs.HAIR_STYLES,
    "upper_colour": tuple(attrs.CLOTH),
    "upper_pattern": attrs.PATTERNS,
    "upper_second": tuple(attrs.CLOTH),
    "sleeves": attrs.SLEEVES,
    "lower_colour": tuple(attrs.CLOTH),
    "lower_kind": attrs.LOWER_KINDS,
    "shoe_colour": tuple(attrs.CLOTH),
    "bag": attrs.BAGS,
    "bag_colour": tuple(attrs.CLOTH),
    "bag_side": attrs.SIDES,
}


def _figure(person: attrs.Identity, facing: str) -> np.ndarray:
    canvas = np.full((128, 64, 3), 127, np.uint8)
    draw_person(canvas, person, Pose(facing, phase=1.0, stride=0.3, arm_swing=0.2), 32.0, 124.0, 110.0)
    return canvas


@pytest.mark.parametrize(("field", "value"), [(f, v) for f, values in ATTRIBUTE_VALUES.items() for v in values])
def test_every_attribute_value_renders(field: str, value: str) -> None:
    person = dataclasses.replace(BASE, **{field: value})
    for facing in FACINGS:
        assert (_figure(person, facing) != 127).any(axis=2).sum() > 500, facing


@pytest.mark.parametrize("field", list(ATTRIBUTE_VALUES))
def test_attribute_values_look_different(field: str) -> None:
    """Two values of one attribute never give the same picture in all four facings."""
    values = ATTRIBUTE_VALUES[field]
    views = {v: [_figure(dataclasses.replace(BASE, **{field: v}), f) for f in FACINGS] for v in values}
    for i, a in enumerate(values):
        for b in values[i + 1 :]:
            assert any((x != y).any() for x, y in zip(views[a], views[b])), (a, b)


def test_identities_share_colours() -> None:
    """Colour alone must not identify: among 300 people, common outfits' colours recur often."""
    people = [world_identity(0, pid) for pid in range(1, 301)]
    combos = defaultdict(int)
    for p in people:
        combos[frozenset((p.upper_colour, p.lower_colour))] += 1
    assert max(combos.values()) >= 5
    assert len({p.upper_colour for p in people}) >= 15


# -- the world on disk -----------------------------------------------------------------------------
def test_layout_parses_and_counts_match(world: Path) -> None:
    ds = Market1501(world)
    summary = ds.summary()
    assert summary["train"]["ids"] == SPEC.train_ids
    assert summary["query"]["ids"] == SPEC.test_ids
    real_gallery = {r.pid for r in ds.gallery if r.pid > 0}
    assert real_gallery == {r.pid for r in ds.query}
    files = {f: len(list((world / f).iterdir())) for f in ("bounding_box_train", "query", "bounding_box_test")}
    assert files == {"bounding_box_train": len(ds.train), "query": len(ds.query), "bounding_box_test": len(ds.gallery)}
    assert summary["train"]["cameras"] <= SPEC.cameras

    per_id_cam: dict[tuple[int, int], int] = defaultdict(int)
    for folder in ("bounding_box_train", "query", "bounding_box_test"):
        for pid, cam in _names(world, folder):
            if pid > 0:
                per_id_cam[pid, cam] += 1
    cams_of: dict[int, set[int]] = defaultdict(set)
    for (pid, cam), n in per_id_cam.items():
        cams_of[pid].add(cam)
        assert SPEC.queries_per_camera + 1 <= n <= SPEC.images_per_camera
    assert all(len(c) >= 2 for c in cams_of.values())
    queries = defaultdict(int)
    for pid, cam in _names(world, "query"):
        queries[pid, cam] += 1
    assert set(queries.values()) == {SPEC.queries_per_camera}


def test_train_and_test_identities_are_disjoint(world: Path) -> None:
    train = {pid for pid, _ in _names(world, "bounding_box_train")}
    test = {pid for folder in ("query", "bounding_box_test") for pid, _ in _names(world, folder) if pid > 0}
    assert train and test and not train & test
    assert train | test == set(range(1, SPEC.train_ids + SPEC.test_ids + 1))


def test_distractors_and_junk_only_in_gallery(world: Path) -> None:
    gallery = [pid for pid, _ in _names(world, "bounding_box_test")]
    assert 0 in gallery and -1 in gallery
    for folder in ("bounding_box_train", "query"):
        assert all(pid > 0 for pid, _ in _names(world, folder))


def test_worker_count_does_not_change_the_files(world: Path, tmp_path: Path) -> None:
    write_world(tmp_path / "two", SPEC, workers=2)
    assert _files(tmp_path / "two") == _files(world)


def test_refuses_to_overwrite_without_force(world: Path, tmp_path: Path) -> None:
    root = tmp_path / "w"
    root.mkdir()
    (root / "keep.txt").write_text("mine")
    with pytest.raises(DatasetError, match="--force"):
        write_world(root, SPEC, workers=1)
    assert (root / "keep.txt").read_text() == "mine"
    summary = write_world(root, SPEC, workers=1, force=True)
    assert not (root / "keep.txt").exists()
    assert _files(root) == _files(world)
    assert summary.images["query"] == len(list((root / "query").iterdir()))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["w"]


def test_empty_target_folder_is_used(tmp_path: Path) -> None:
    (tmp_path / "w").mkdir()
    write_world(tmp_path / "w", dataclasses.replace(SPEC, train_ids=2, test_ids=2), workers=1)
    assert (tmp_path / "w" / "query").is_dir()


@pytest.mark.parametrize("error", [RuntimeError("disk full"), KeyboardInterrupt()])
def test_failure_leaves_nothing_behind(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, error: BaseException) -> None:
    rendered = []
    real = world_module.render_shot

    def failing(spec, shot):
        if len(rendered) == 10:
            raise error
        rendered.append(shot)
        return real(spec, shot)

    monkeypatch.setattr(world_module, "render_shot", failing)
    with pytest.raises(type(error)):
        write_world(tmp_path / "w", SPEC, workers=1)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    "changes",
    [{"cameras": 1}, {"train_ids": 0}, {"images_per_camera": 1}, {"queries_per_camera": 3}, {"height": 8}, {"junk_fraction": 2.0}],
)
def test_invalid_specs_are_usage_errors(changes: dict[str, int]) -> None:
    with pytest.raises(UsageError):
        dataclasses.replace(SPEC, **changes)
