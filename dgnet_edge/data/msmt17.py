"""MSMT17 reader: the V1 release and the V2 release (faces masked), each with its published lists.

Wei et al., "Person Transfer GAN to Bridge Domain Gap for Person Re-Identification", CVPR 2018.
http://www.pkuvmc.com/publications/msmt17.html

Published split, 15 cameras (12 outdoor, 3 indoor), 4,101 ids, 126,441 images:

    train     1,041 ids   32,621 images  (list_train.txt 30,248 + list_val.txt 2,373)
    query     3,060 ids   11,659 images
    gallery   3,060 ids   82,161 images

The two releases differ only in folder names: V1 keeps images in ``train/`` and ``test/``, V2 in
``mask_train_v2/`` and ``mask_test_v2/``. Both split the data by four list files whose lines are
``<image path> <id>``, e.g. ``0000/0000_000_01_0303morning_0015_0.jpg 0``, with paths relative to the
train folder (``list_train.txt``, ``list_val.txt``) or the test folder (``list_query.txt``,
``list_gallery.txt``). File names are ``PPPP_NNN_CC_<day><time>_FFFF_K.jpg`` (some end in ``_ex``):
identity, image index, camera (01-15), day and time of day, frame, box. Identities come from the
list files; training and test ids are each numbered from 0, so id 0 is a real person in the query
and gallery too (MSMT17 has no distractor or junk ids).

The version is detected from the folders on disk; ``version="V1"``/``"V2"`` forces one, and when
both are unpacked side by side V1 is read, as the published results mostly use it.

Training split: ``list_val.txt`` is a held-out part of the published training set. By default
(``merge_val=True``) it is merged back, so ``train`` is the whole published training set (32,621
images of 1,041 ids), as DG-Net trains on the whole training set of a dataset; ``merge_val=False``
reads ``list_train.txt`` alone, which is what torchreid and fast-reid do unless told to combine.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path

from dgnet_edge.data.dataset import ImageRecord, ReidDataset
from dgnet_edge.errors import DatasetError

log = logging.getLogger(__name__)

NAME_PATTERN = re.compile(r"^(\d+)_(\d+)_(\d+)_")

# version -> (train folder, test folder)
VERSION_FOLDERS = {"V1": ("train", "test"), "V2": ("mask_train_v2", "mask_test_v2")}

LIST_FILES = {"train": "list_train.txt", "val": "list_val.txt", "query": "list_query.txt", "gallery": "list_gallery.txt"}

LIST_LINE_EXAMPLE = "0000/0000_000_01_0303morning_0015_0.jpg 0"


def parse_msmt17_camera(name: str) -> int | None:
    """The 0-based camera index in an MSMT17 file name, or None if the name does not parse."""
    m = NAME_PATTERN.match(name)
    if m is None or int(m.group(3)) < 1:
        return None
    return int(m.group(3)) - 1


def read_list_file(list_path: Path, image_dir: Path) -> list[ImageRecord]:
    """The images named by an MSMT17 list file, paths resolved under ``image_dir``, in file order.

    DatasetError, naming the list file and line, for a line that does not parse or an image that is
    not on disk.
    """
    try:
        text = list_path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as e:
        raise DatasetError(f"{list_path}: cannot read the list file ({e}); restore it from the MSMT17 archive") from e
    records = []
    for number, line in enumerate(text.splitlines(), start=1):
        fields = line.split()
        if not fields:
            continue
        where = f"{list_path}, line {number}"
        if len(fields) != 2:
            raise DatasetError(
                f"{where}: expected '<image path> <id>' such as '{LIST_LINE_EXAMPLE}', got {line.strip()!r}; "
                "restore the list file from the MSMT17 archive"
            )
        relative, label = fields
        if not (label.isascii() and label.isdigit()):
            raise DatasetError(f"{where}: the id {label!r} is not a non-negative integer (line {line.strip()!r})")
        camid = parse_msmt17_camera(Path(relative).name)
        if camid is None:
            raise DatasetError(
                f"{where}: file name {Path(relative).name!r} does not follow the MSMT17 pattern "
                "PPPP_NNN_CC_<day><time>_FFFF_K.jpg (identity, index, camera 01-15, ...)"
            )
        path = image_dir / relative
        if not path.is_file():
            raise DatasetError(
                f"{where}: lists {path}, which is not on disk; the {image_dir.name}/ folder is incomplete "
                "or belongs to another MSMT17 version, re-extract the archive"
            )
        records.append(ImageRecord(path, int(label), camid))
    return records


def _child(folder: Path, name: str) -> Path:
    """``folder/name``, matching the name case-insensitively (archives spell mask_train_v2 both ways)."""
    exact = folder / name
    if exact.exists() or not folder.is_dir():
        return exact
    for entry in folder.iterdir():
        if entry.name.lower() == name.lower():
            return entry
    return exact


class MSMT17(ReidDataset):
    """MSMT17 V1 or V2 in its published layout.

    Args:
        root: the unpacked ``MSMT17_V1/`` or ``MSMT17_V2/`` folder, or a folder holding one of them
            (directly or under ``msmt17/``).
        version: ``"V1"`` or ``"V2"`` to insist on one; None reads whichever is on disk (V1 if both).
        merge_val: train on ``list_train.txt`` + ``list_val.txt`` (the whole published training
            set, the default) or on ``list_train.txt`` alone.
    """

    name = "msmt17"
    layout = (
        "  ROOT/train/0000/0000_000_01_0303morning_0015_0.jpg ...   (V2: ROOT/mask_train_v2/...)\n"
        "  ROOT/test/0000/0000_000_01_0303morning_0036_0.jpg ...    (V2: ROOT/mask_test_v2/...)\n"
        "  ROOT/list_train.txt, ROOT/list_val.txt     lines like '0000/0000_000_01_0303morning_0015_0.jpg 0', under train/\n"
        "  ROOT/list_query.txt, ROOT/list_gallery.txt lines of the same form, under test/\n"
        "  ROOT is MSMT17_V1/ or MSMT17_V2/, or the folder that holds it (directly or under msmt17/)."
    )

    def __init__(self, root: str | Path, version: str | None = None, merge_val: bool = True):
        if version is not None and version.upper() not in VERSION_FOLDERS:
            raise ValueError(f"unknown MSMT17 version {version!r}: expected V1, V2 or None (detect)")
        wanted = version.upper() if version is not None else None
        self.merge_val = merge_val
        root = Path(root).expanduser()
        found = self._detect(root)
        if wanted is not None:
            found = [(v, base) for v, base in found if v == wanted]
        if not found:
            if not root.is_dir():
                raise DatasetError(f"{self.name}: dataset folder {root} does not exist. Expected layout:\n{self.layout}")
            what = f"MSMT17_{wanted}" if wanted else "MSMT17_V1 or MSMT17_V2"
            raise DatasetError(f"{self.name}: found no {what} image folders at {root}. Expected layout:\n{self.layout}")
        versions = {v for v, _ in found}
        self.version = "V1" if "V1" in versions else "V2"
        base = next(b for v, b in found if v == self.version)
        if len(versions) > 1:
            log.info("msmt17: both V1 and V2 found under %s; reading V1 (pass version='V2' for the other)", root)
        train_name, test_name = VERSION_FOLDERS[self.version]
        self.train_dir = _child(base, train_name)
        self.test_dir = _child(base, test_name)
        super().__init__(base)

    @staticmethod
    def _detect(root: Path) -> list[tuple[str, Path]]:
        """(version, folder) for every MSMT17 image layout found at or under ``root``, in search order."""
        bases = [root]
        for parent in (root, root / "msmt17"):
            bases += [parent / f"MSMT17_{v}" for v in VERSION_FOLDERS]
        found = []
        for base in bases:
            for version, (train_name, _) in VERSION_FOLDERS.items():
                if _child(base, train_name).is_dir() and (version, base) not in found:
                    found.append((version, base))
        return found

    def required_paths(self) -> list[Path]:
        lists = ["train", "val", "query", "gallery"] if self.merge_val else ["train", "query", "gallery"]
        return [self.train_dir, self.test_dir] + [self.root / LIST_FILES[k] for k in lists]

    def _read_split(self, split: str) -> list[ImageRecord]:
        if split == "train":
            records = read_list_file(self.root / LIST_FILES["train"], self.train_dir)
            if self.merge_val:
                records += read_list_file(self.root / LIST_FILES["val"], self.train_dir)
        else:
            records = read_list_file(self.root / LIST_FILES[split], self.test_dir)
        return sorted(records, key=lambda r: r.path)
