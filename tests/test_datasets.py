"""Dataset readers on small trees in each dataset's published layout and file-name format.

Every registered reader needs a tree builder in BUILDERS (a test fails otherwise); the builder writes
a few identities x cameras as tiny real images and says what the reader must find.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
import pytest

from dgnet_edge.data.cuhk03 import CUHK03NP
from dgnet_edge.data.dataset import ImageRecord, list_images
from dgnet_edge.data.dukemtmc import DukeMTMCreID
from dgnet_edge.data.market1501 import Market1501
from dgnet_edge.data.msmt17 import MSMT17
from dgnet_edge.data.registry import build_dataset, dataset_names, register_dataset
from dgnet_edge.errors import DatasetError

SPLITS = ("train", "query", "gallery")
PIXELS = np.dstack([np.full((8, 4), v, np.uint8) for v in (40, 120, 200)])


def write_image(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(path), PIXELS):
        raise RuntimeError(f"cv2.imwrite failed for {path}")


@dataclass
class Tree:
    """A dataset tree on disk and what its reader must return."""

    root: Path  # what the reader is given
    images: dict[str, int]  # split -> number of images
    ids: dict[str, set[int]]  # split -> identities as named on disk (train: before relabelling)
    cams: dict[str, set[int]]  # split -> 0-based camera ids
    break_a_name: Callable[[], list[str]] = field(repr=False, default=lambda: [])
    """Puts one unparsable file name into the tree; returns fragments the error message must contain."""


# ---------------------------------------------------------------- Market layout (Market, Duke, CUHK03-NP)


def market_name(pid: int, cam: int, i: int) -> str:
    return f"{pid:04d}_c{cam}s{1 + i % 3}_{100 * i + 51:06d}_{i % 4:02d}.jpg" if pid >= 0 else f"-1_c{cam}s1_{i:06d}_00.jpg"


def duke_name(pid: int, cam: int, i: int) -> str:
    return f"{pid:04d}_c{cam}_f{1000 * i + 46182:07d}.jpg" if pid >= 0 else f"-1_c{cam}_f{i:07d}.jpg"


def cuhk03_name(pid: int, cam: int, i: int) -> str:
    return f"{pid:04d}_c{cam}_{i + 1}.png"


def write_market_style(root: Path, spec: dict[str, list[tuple[int, int]]], namer: Callable[[int, int, int], str]) -> None:
    """One image per (pid, 1-based camera) entry of each folder."""
    for folder, entries in spec.items():
        (root / folder).mkdir(parents=True, exist_ok=True)
        for i, (pid, cam) in enumerate(entries):
            write_image(root / folder / namer(pid, cam, i))


# Train ids are written out of order and include distractor (0) and junk (-1) files, which must be
# left out; the gallery keeps both.
MARKET_SPEC = {
    "bounding_box_train": [(7, 3), (2, 1), (7, 6), (2, 2), (5, 1), (5, 1), (0, 4), (-1, 2)],
    "query": [(1, 1), (3, 2)],
    "bounding_box_test": [(1, 2), (1, 3), (3, 1), (0, 4), (-1, 5)],
}


def build_market(root: Path) -> Tree:
    write_market_style(root, MARKET_SPEC, market_name)

    def break_a_name() -> list[str]:
        write_image(root / "bounding_box_train" / "person2_cam1.jpg")
        return ["person2_cam1.jpg", "PPPP_cCsS_FFFFFF_BB.jpg"]

    return Tree(
        root=root,
        images={"train": 6, "query": 2, "gallery": 5},
        ids={"train": {2, 5, 7}, "query": {1, 3}, "gallery": {1, 3, 0, -1}},
        cams={"train": {0, 1, 2, 5}, "query": {0, 1}, "gallery": {0, 1, 2, 3, 4}},
        break_a_name=break_a_name,
    )


DUKE_SPEC = {
    "bounding_box_train": [(12, 8), (4, 1), (12, 2), (4, 7), (9, 3), (0, 2), (-1, 1)],
    "query": [(5, 2), (6, 8)],
    "bounding_box_test": [(5, 5), (6, 1), (6, 3), (7140, 4), (0, 6), (-1, 6)],
}


def build_duke(root: Path) -> Tree:
    write_market_style(root, DUKE_SPEC, duke_name)

    def break_a_name() -> list[str]:
        # A Market-style name is not a DukeMTMC-reID name.
        write_image(root / "query" / "0005_c2s1_000451_03.jpg")
        return ["0005_c2s1_000451_03.jpg", "PPPP_cC_fFFFFFFF.jpg"]

    return Tree(
        root=root,
        images={"train": 5, "query": 2, "gallery": 6},
        ids={"train": {4, 9, 12}, "query": {5, 6}, "gallery": {5, 6, 7140, 0, -1}},
        cams={"train": {0, 1, 2, 6, 7}, "query": {1, 7}, "gallery": {0, 2, 3, 4, 5}},
        break_a_name=break_a_name,
    )


# Both variants are written with different content, so reading the wrong one shows.
CUHK03_SPECS = {
    "detected": {
        "bounding_box_train": [(1, 1), (1, 2), (2, 1), (2, 2), (4, 2)],
        "query": [(3, 1), (3, 2), (6, 1), (6, 2)],
        "bounding_box_test": [(3, 1), (3, 2), (6, 1), (6, 2), (6, 2)],
    },
    "labeled": {
        "bounding_box_train": [(1, 1), (2, 2), (4, 1), (4, 2)],
        "query": [(3, 1), (3, 2)],
        "bounding_box_test": [(3, 1), (3, 2), (3, 2)],
    },
}


def build_cuhk03(root: Path, variant: str) -> Tree:
    """``root`` is the cuhk03-np folder; the reader is given it."""
    for v, spec in CUHK03_SPECS.items():
        write_market_style(root / v, spec, cuhk03_name)

    def break_a_name() -> list[str]:
        write_image(root / variant / "bounding_box_test" / "0003-c1-1.png")
        return ["0003-c1-1.png", "PPPP_cC_N.png"]

    spec = CUHK03_SPECS[variant]
    folders = {"train": "bounding_box_train", "query": "query", "gallery": "bounding_box_test"}
    return Tree(
        root=root,
        images={s: len(spec[f]) for s, f in folders.items()},
        ids={s: {pid for pid, _ in spec[f]} for s, f in folders.items()},
        cams={s: {cam - 1 for _, cam in spec[f]} for s, f in folders.items()},
        break_a_name=break_a_name,
    )


# ---------------------------------------------------------------- MSMT17


def msmt17_relative(pid: int, cam: int, i: int) -> str:
    times = ("0303morning", "0113noon", "0302afternoon")
    return f"{pid:04d}/{pid:04d}_{i:03d}_{cam:02d}_{times[i % 3]}_{37 * i + 15:04d}_{i % 3}.jpg"


def write_msmt17(base: Path, version: str, lists: dict[str, list[tuple[int, int]]]) -> None:
    """Images and list files of one MSMT17 version under ``base``; lists maps train/val/query/gallery
    to (pid, 1-based camera) entries, one image each."""
    train_dir, test_dir = {"V1": ("train", "test"), "V2": ("mask_train_v2", "mask_test_v2")}[version]
    counter = 0
    for key, entries in lists.items():
        image_dir = base / (train_dir if key in ("train", "val") else test_dir)
        lines = []
        for pid, cam in entries:
            relative = msmt17_relative(pid, cam, counter)
            counter += 1
            write_image(image_dir / relative)
            lines.append(f"{relative} {pid}")
        (base / f"list_{key}.txt").write_text("\n".join(lines) + "\n")


# Test ids start at 0 like the real lists: id 0 is a real person in query and gallery.
MSMT17_LISTS = {
    "train": [(3, 1), (0, 15), (3, 7), (1, 2), (0, 4)],
    "val": [(0, 9), (1, 12)],
    "query": [(0, 3), (2, 10)],
    "gallery": [(0, 5), (2, 11), (2, 3), (4, 14)],
}


def build_msmt17(base: Path, version: str = "V1") -> Tree:
    """``base`` is the MSMT17_V1 (or _V2) folder; the reader is given it."""
    write_msmt17(base, version, MSMT17_LISTS)

    def break_a_name() -> list[str]:
        path = base / "list_query.txt"
        path.write_text(path.read_text() + "0002/img_0002.jpg 2\n")
        return ["list_query.txt", "line 3", "img_0002.jpg"]

    train = MSMT17_LISTS["train"] + MSMT17_LISTS["val"]
    return Tree(
        root=base,
        images={"train": len(train), "query": 2, "gallery": 4},
        ids={"train": {0, 1, 3}, "query": {0, 2}, "gallery": {0, 2, 4}},
        cams={"train": {c - 1 for _, c in train}, "query": {2, 9}, "gallery": {4, 10, 2, 13}},
        break_a_name=break_a_name,
    )


# name -> (builder of the dataset folder, the folder name the archive unpacks to)
BUILDERS: dict[str, tuple[Callable[[Path], Tree], str]] = {
    "market1501": (build_market, "Market-1501-v15.09.15"),
    "dukemtmc": (build_duke, "DukeMTMC-reID"),
    "msmt17": (build_msmt17, "MSMT17_V1"),
    "cuhk03_detected": (lambda root: build_cuhk03(root, "detected"), "cuhk03-np"),
    "cuhk03_labeled": (lambda root: build_cuhk03(root, "labeled"), "cuhk03-np"),
}


def original_id(record: ImageRecord) -> int:
    """The identity a file name starts with (all four datasets name files PPPP_...)."""
    return int(record.path.name.split("_")[0])


def check_tree(ds, tree: Tree) -> None:
    for split in SPLITS:
        records = ds.split(split)
        assert len(records) == tree.images[split], split
        assert all(type(r.pid) is int and type(r.camid) is int for r in records), split
        assert {r.camid for r in records} == tree.cams[split], split
        assert [r.path for r in records] == sorted(r.path for r in records), f"{split} not sorted"
        assert all(r.path.is_file() for r in records)
        if split != "train":
            assert {r.pid for r in records} == tree.ids[split], split
            assert all(r.pid == original_id(r) for r in records), split
    # Training ids are relabelled 0..N-1 in sorted order of the original ids.
    originals = sorted(tree.ids["train"])
    assert {r.pid for r in ds.train} == set(range(len(originals)))
    assert all(r.pid == originals.index(original_id(r)) for r in ds.train)
    assert ds.num_train_pids == len(originals)
    assert ds.num_train_cams == len(tree.cams["train"])
    summary = ds.summary()
    assert {s: summary[s]["images"] for s in SPLITS} == tree.images
    assert sum(ds.camera_counts("gallery").values()) == tree.images["gallery"]


# ---------------------------------------------------------------- every registered reader


def test_every_registered_reader_has_a_tree_builder():
    missing = set(dataset_names()) - set(BUILDERS)
    assert not missing, f"registered dataset readers without a test tree builder in BUILDERS: {sorted(missing)}"
    assert {"market1501", "dukemtmc", "msmt17", "cuhk03_detected", "cuhk03_labeled"} <= set(dataset_names())


@pytest.mark.parametrize("name", dataset_names())
def test_reads_the_published_layout(name, tmp_path):
    builder, _ = BUILDERS[name]
    tree = builder(tmp_path / "data")
    ds = build_dataset(name, tree.root)
    check_tree(ds, tree)
    # Reading is deterministic.
    again = build_dataset(name, tree.root)
    assert [again.split(s) for s in SPLITS] == [ds.split(s) for s in SPLITS]


@pytest.mark.parametrize("name", dataset_names())
def test_accepts_the_folder_holding_the_unpacked_archive(name, tmp_path):
    builder, unpacked = BUILDERS[name]
    tree = builder(tmp_path / "downloads" / unpacked)
    ds = build_dataset(name, tmp_path / "downloads")
    check_tree(ds, tree)


@pytest.mark.parametrize("name", dataset_names())
def test_missing_root_is_a_dataset_error(name, tmp_path):
    with pytest.raises(DatasetError, match="does not exist") as e:
        build_dataset(name, tmp_path / "nowhere")
    assert "Expected layout" in str(e.value)


@pytest.mark.parametrize("name", dataset_names())
def test_wrong_folder_names_the_expected_layout(name, tmp_path):
    (tmp_path / "photos").mkdir()
    write_image(tmp_path / "photos" / "0001_c1s1_000151_00.jpg")
    with pytest.raises(DatasetError) as e:
        build_dataset(name, tmp_path / "photos")
    message = str(e.value)
    assert "Expected layout" in message
    assert "ROOT/" in message


@pytest.mark.parametrize("name", dataset_names())
def test_missing_required_path_is_named(name, tmp_path):
    builder, _ = BUILDERS[name]
    tree = builder(tmp_path / "data")
    last = build_dataset(name, tree.root).required_paths()[-1]  # the gallery folder or list file
    shutil.rmtree(last) if last.is_dir() else last.unlink()
    with pytest.raises(DatasetError) as e:
        build_dataset(name, tree.root)
    assert str(last) in str(e.value)
    assert "Expected layout" in str(e.value)


@pytest.mark.parametrize("name", dataset_names())
def test_unparsable_file_name_is_named(name, tmp_path):
    builder, _ = BUILDERS[name]
    tree = builder(tmp_path / "data")
    fragments = tree.break_a_name()
    ds = build_dataset(name, tree.root)
    with pytest.raises(DatasetError) as e:
        for split in SPLITS:
            ds.split(split)
    for fragment in fragments:
        assert fragment in str(e.value)


# ---------------------------------------------------------------- Market layout details


@pytest.mark.parametrize("reader, spec, namer", [(Market1501, MARKET_SPEC, market_name), (DukeMTMCreID, DUKE_SPEC, duke_name)])
def test_distractors_and_junk_stay_in_gallery_and_never_train(reader, spec, namer, tmp_path):
    write_market_style(tmp_path, spec, namer)
    ds = reader(tmp_path)
    junk = {"train": [], "gallery": []}
    for folder, split in (("bounding_box_train", "train"), ("bounding_box_test", "gallery")):
        junk[split] = [tmp_path / folder / namer(pid, cam, i) for i, (pid, cam) in enumerate(spec[folder]) if pid < 1]
    train_paths = {r.path for r in ds.train}
    assert junk["train"] and not train_paths & set(junk["train"])
    gallery = {r.path: r.pid for r in ds.gallery}
    assert sorted(gallery[p] for p in junk["gallery"]) == [-1, 0]


@pytest.mark.parametrize("reader, namer", [(Market1501, market_name), (DukeMTMCreID, duke_name)])
def test_query_with_distractor_id_is_an_error(reader, namer, tmp_path):
    spec = MARKET_SPEC if reader is Market1501 else DUKE_SPEC
    write_market_style(tmp_path, spec, namer)
    write_image(tmp_path / "query" / namer(0, 1, 99))
    with pytest.raises(DatasetError, match="real identity") as e:
        reader(tmp_path).query
    assert namer(0, 1, 99) in str(e.value)


def test_hidden_and_non_image_files_are_ignored(tmp_path):
    write_market_style(tmp_path, MARKET_SPEC, market_name)
    (tmp_path / "bounding_box_test" / "Thumbs.db").write_bytes(b"\0" * 16)
    (tmp_path / "bounding_box_test" / "._0001_c2s1_000051_00.jpg").write_bytes(b"\0\5\26\7")
    (tmp_path / "query" / "readme.txt").write_text("not an image")
    ds = Market1501(tmp_path)
    assert len(ds.gallery) == 5 and len(ds.query) == 2


def test_image_suffixes_are_case_insensitive(tmp_path):
    write_market_style(tmp_path, MARKET_SPEC, market_name)
    shutil.move(tmp_path / "query" / market_name(1, 1, 0), tmp_path / "query" / market_name(1, 1, 0).replace(".jpg", ".JPG"))
    assert len(Market1501(tmp_path).query) == 2


def test_empty_split_is_an_error(tmp_path):
    write_market_style(tmp_path, MARKET_SPEC, market_name)
    shutil.rmtree(tmp_path / "query")
    (tmp_path / "query").mkdir()
    ds = Market1501(tmp_path)
    assert len(ds.train) == 6  # other splits still read
    with pytest.raises(DatasetError, match="query split .* has no images"):
        ds.query


def test_required_folder_that_is_a_file_is_an_error(tmp_path):
    write_market_style(tmp_path, MARKET_SPEC, market_name)
    shutil.rmtree(tmp_path / "bounding_box_test")
    (tmp_path / "bounding_box_test").write_text("")
    with pytest.raises(DatasetError, match="not a folder"):
        Market1501(tmp_path).gallery
    with pytest.raises(DatasetError, match="not a folder"):
        list_images(tmp_path / "bounding_box_test")


def test_market_camera_zero_is_an_error(tmp_path):
    write_market_style(tmp_path, MARKET_SPEC, market_name)
    write_image(tmp_path / "bounding_box_test" / "0003_c0s1_000151_00.jpg")
    with pytest.raises(DatasetError, match="0003_c0s1_000151_00.jpg.*camera"):
        Market1501(tmp_path).gallery


def test_market_accepts_torchreid_folder_names(tmp_path):
    build_market(tmp_path / "market1501" / "Market-1501-v15.09.15")
    assert len(Market1501(tmp_path).gallery) == 5
    build_duke(tmp_path / "dukemtmc-reid" / "DukeMTMC-reID")
    assert len(DukeMTMCreID(tmp_path).gallery) == 6


# ---------------------------------------------------------------- CUHK03-NP details


def test_cuhk03_variants_read_their_own_folders(tmp_path):
    build_cuhk03(tmp_path / "cuhk03-np", "detected")
    detected = build_dataset("cuhk03_detected", tmp_path)
    labeled = build_dataset("cuhk03_labeled", tmp_path)
    assert {r.path.parent.parent.name for r in detected.gallery} == {"detected"}
    assert {r.path.parent.parent.name for r in labeled.gallery} == {"labeled"}
    assert len(detected.query) == 4 and len(labeled.query) == 2
    assert (detected.name, labeled.name) == ("cuhk03_detected", "cuhk03_labeled")


def test_cuhk03_accepts_the_variant_folder_itself(tmp_path):
    build_cuhk03(tmp_path / "cuhk03-np", "labeled")
    ds = CUHK03NP(tmp_path / "cuhk03-np" / "labeled", variant="labeled")
    assert len(ds.gallery) == 3
    # ...but never reads the other variant's folder.
    with pytest.raises(DatasetError, match="no detected/ folder"):
        CUHK03NP(tmp_path / "cuhk03-np" / "labeled", variant="detected")


def test_cuhk03_unknown_variant():
    with pytest.raises(ValueError, match="variant"):
        CUHK03NP("/tmp", variant="both")


# ---------------------------------------------------------------- MSMT17 details


def test_msmt17_v2_layout(tmp_path):
    tree = build_msmt17(tmp_path / "MSMT17_V2", "V2")
    ds = MSMT17(tmp_path)
    assert ds.version == "V2"
    assert ds.train_dir.name == "mask_train_v2"
    check_tree(ds, tree)


def test_msmt17_v2_folder_names_in_capitals(tmp_path):
    tree = build_msmt17(tmp_path / "MSMT17_V2", "V2")
    for old, new in (("mask_train_v2", "mask_train_V2"), ("mask_test_v2", "mask_test_V2")):
        (tmp_path / "MSMT17_V2" / old).rename(tmp_path / "MSMT17_V2" / new)
    check_tree(MSMT17(tmp_path), tree)


def test_msmt17_prefers_v1_when_both_are_unpacked_unless_told(tmp_path):
    build_msmt17(tmp_path / "MSMT17_V1", "V1")
    build_msmt17(tmp_path / "MSMT17_V2", "V2")
    assert MSMT17(tmp_path).version == "V1"
    v2 = MSMT17(tmp_path, version="v2")
    assert v2.version == "V2" and v2.root == tmp_path / "MSMT17_V2"
    assert all("mask_test_v2" in r.path.parts for r in v2.gallery)


def test_msmt17_asked_version_not_on_disk(tmp_path):
    build_msmt17(tmp_path / "MSMT17_V1", "V1")
    with pytest.raises(DatasetError, match="found no MSMT17_V2"):
        MSMT17(tmp_path, version="V2")
    with pytest.raises(ValueError, match="version"):
        MSMT17(tmp_path, version="V3")


def test_msmt17_accepts_torchreid_folder_names(tmp_path):
    build_msmt17(tmp_path / "msmt17" / "MSMT17_V1")
    assert len(MSMT17(tmp_path).gallery) == 4


def test_msmt17_merges_val_into_train_unless_told(tmp_path):
    build_msmt17(tmp_path / "MSMT17_V1")
    merged = MSMT17(tmp_path)
    assert len(merged.train) == len(MSMT17_LISTS["train"]) + len(MSMT17_LISTS["val"])
    (tmp_path / "MSMT17_V1" / "list_val.txt").unlink()  # not needed without merging
    alone = MSMT17(tmp_path, merge_val=False)
    assert len(alone.train) == len(MSMT17_LISTS["train"])
    assert alone.num_train_pids == 3
    with pytest.raises(DatasetError, match="list_val.txt"):
        MSMT17(tmp_path)


def test_msmt17_ids_come_from_the_lists_and_cameras_from_the_names(tmp_path):
    build_msmt17(tmp_path / "MSMT17_V1")
    ds = MSMT17(tmp_path)
    record = next(r for r in ds.gallery if r.pid == 4)
    assert record.path.name.split("_")[2] == "14" and record.camid == 13
    assert 0 in {r.pid for r in ds.query}  # a real identity in MSMT17, not a distractor


def test_msmt17_list_file_tolerates_blank_lines_crlf_and_bom(tmp_path):
    build_msmt17(tmp_path / "MSMT17_V1")
    path = tmp_path / "MSMT17_V1" / "list_query.txt"
    lines = path.read_text().splitlines()
    path.write_bytes(("\ufeff" + "\r\n".join(lines) + "\r\n\r\n").encode("utf-8"))
    assert len(MSMT17(tmp_path).query) == 2


@pytest.mark.parametrize(
    "bad_line, fragment",
    [
        ("0000/0000_009_03_0303noon_0001_0.jpg", "expected '<image path> <id>'"),
        ("0000/0000_009_03_0303noon_0001_0.jpg 0 extra", "expected '<image path> <id>'"),
        ("0000/0000_009_03_0303noon_0001_0.jpg zero", "not a non-negative integer"),
        ("0000/0000_009_03_0303noon_0001_0.jpg -4", "not a non-negative integer"),
        ("0000/0000_009_03_0303noon_0001_0.jpg \u00b2", "not a non-negative integer"),
        ("0000/0000_c3_0001.jpg 0", "does not follow the MSMT17 pattern"),
        ("0000/0000_009_00_0303noon_0001_0.jpg 0", "does not follow the MSMT17 pattern"),
    ],
)
def test_msmt17_bad_list_line_names_file_and_line(bad_line, fragment, tmp_path):
    build_msmt17(tmp_path / "MSMT17_V1")
    path = tmp_path / "MSMT17_V1" / "list_gallery.txt"
    lines = path.read_text().splitlines()
    path.write_text("\n".join(lines[:2] + [bad_line] + lines[2:]) + "\n")
    with pytest.raises(DatasetError) as e:
        MSMT17(tmp_path).gallery
    message = str(e.value)
    assert f"{path}, line 3" in message
    assert fragment in message


def test_msmt17_listed_image_missing_is_named(tmp_path):
    build_msmt17(tmp_path / "MSMT17_V1")
    missing = tmp_path / "MSMT17_V1" / "train" / msmt17_relative(1, 2, 3)
    missing.unlink()
    with pytest.raises(DatasetError) as e:
        MSMT17(tmp_path).train
    message = str(e.value)
    assert str(missing) in message
    assert "list_train.txt, line 4" in message


def test_msmt17_unreadable_list_file(tmp_path):
    build_msmt17(tmp_path / "MSMT17_V1")
    (tmp_path / "MSMT17_V1" / "list_query.txt").write_bytes(b"\xff\xfe\x00garbage")
    with pytest.raises(DatasetError, match="list_query.txt: cannot read the list file"):
        MSMT17(tmp_path).query


# ---------------------------------------------------------------- registry


def test_unknown_dataset_lists_the_valid_names(tmp_path):
    with pytest.raises(DatasetError) as e:
        build_dataset("market", tmp_path)
    for name in dataset_names():
        assert name in str(e.value)


def test_duplicate_registration_is_refused():
    with pytest.raises(ValueError, match="already registered"):
        register_dataset("market1501", Market1501)
