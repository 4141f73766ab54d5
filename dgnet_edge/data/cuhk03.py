"""CUHK03-NP reader: CUHK03 under the new (Market-like) protocol, ``detected`` or ``labeled`` boxes.

Li et al., "DeepReID: Deep Filter Pairing Neural Network for Person Re-identification", CVPR 2014;
new protocol: Zhong et al., "Re-ranking Person Re-identification with k-reciprocal Encoding",
CVPR 2017.
https://github.com/zhunzhong07/person-re-ranking/tree/master/CUHK03-NP

Published split: 767 training ids and 700 test ids; every test id has one query image from each of
its two cameras, and the rest of its images form the gallery.

    variant    train            query           gallery
    labeled    767 ids  7,368   700 ids  1,400  700 ids  5,328
    detected   767 ids  7,365   700 ids  1,400  700 ids  5,332

``labeled`` crops were drawn by hand, ``detected`` ones by a person detector (DPM). Each identity
was seen by one of five camera pairs; the file names number the two cameras of the pair c1 and c2,
so camids are 0 and 1. File names are ``PPPP_cC_N.png``: identity, camera (1 or 2), image index.
This reader does not read the original ``cuhk-03.mat`` release or the 20 classic splits.
"""

from __future__ import annotations

import re
from pathlib import Path

from dgnet_edge.data.dataset import ImageRecord, ReidDataset
from dgnet_edge.data.market1501 import MARKET_FOLDERS, read_market_folder
from dgnet_edge.errors import DatasetError

NAME_PATTERN = re.compile(r"^(-1|\d+)_c(\d+)_\d+")

VARIANTS = ("detected", "labeled")


def parse_cuhk03_name(path: Path) -> tuple[int, int]:
    """(pid, 0-based camid) from a CUHK03-NP file name; DatasetError naming the file otherwise."""
    m = NAME_PATTERN.match(path.name)
    if m is None:
        raise DatasetError(f"{path}: file name does not follow the CUHK03-NP pattern PPPP_cC_N.png")
    pid, cam = int(m.group(1)), int(m.group(2))
    if cam < 1:
        raise DatasetError(f"{path}: camera number must start at 1, got c{cam}")
    return pid, cam - 1


class CUHK03NP(ReidDataset):
    """CUHK03-NP, one of its two box variants (``detected`` or ``labeled``).

    ``root`` is the unpacked ``cuhk03-np/`` folder (holding ``detected/`` and ``labeled/``), the
    folder that holds ``cuhk03-np/``, or the variant folder itself (``cuhk03-np/detected``).
    """

    name = "cuhk03"
    folders = MARKET_FOLDERS

    def __init__(self, root: str | Path, variant: str = "detected"):
        if variant not in VARIANTS:
            raise ValueError(f"unknown CUHK03-NP variant {variant!r}: expected one of {', '.join(VARIANTS)}")
        self.variant = variant
        self.name = f"cuhk03_{variant}"
        self.layout = (
            f"  ROOT/{variant}/bounding_box_train/0001_c1_1.png ...\n"
            f"  ROOT/{variant}/query/0003_c1_2.png ...\n"
            f"  ROOT/{variant}/bounding_box_test/0003_c2_7.png ...\n"
            "  ROOT is the unpacked cuhk03-np/ folder or the folder that holds it."
        )
        root = Path(root).expanduser()
        candidates = [root / variant, root / "cuhk03-np" / variant]
        if root.name == variant:
            candidates.insert(0, root)
        # The first candidate with a query folder; else the first that exists, so that the base
        # class names its missing folders; else the error below.
        resolved = next((c for c in candidates if (c / "query").is_dir()), None)
        resolved = resolved or next((c for c in candidates if c.is_dir()), None)
        if resolved is None and root.is_dir():
            raise DatasetError(
                f"{self.name}: no {variant}/ folder in {root} or {root / 'cuhk03-np'}. Expected layout:\n{self.layout}"
            )
        super().__init__(resolved or root)

    def required_paths(self) -> list[Path]:
        return [self.root / f for f in self.folders.values()]

    def _read_split(self, split: str) -> list[ImageRecord]:
        return read_market_folder(self.root / self.folders[split], split, parse_cuhk03_name)
