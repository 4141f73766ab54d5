"""Market-1501 reader (also reads the synthetic world, which is written in this layout).

Zheng et al., "Scalable Person Re-identification: A Benchmark", ICCV 2015.
https://zheng-lab-anu.github.io/Project/project_reid.html

Published split: train 12,936 images of 751 ids; query 3,368 images of 750 ids; gallery 19,732
images of 751 ids (750 + distractors id 0000) plus junk (id -1); 6 cameras. File names are
``PPPP_cCsS_FFFFFF_BB.jpg``: identity, camera (1-based), sequence, frame, box.
"""

from __future__ import annotations

import re
from pathlib import Path

from dgnet_edge.data.dataset import ImageRecord, ReidDataset, list_images
from dgnet_edge.errors import DatasetError

NAME_PATTERN = re.compile(r"^(-1|\d+)_c(\d+)s?\d*_")


def parse_market_name(path: Path) -> tuple[int, int]:
    """(pid, 0-based camid) from a Market-style file name; DatasetError naming the file otherwise."""
    m = NAME_PATTERN.match(path.name)
    if m is None:
        raise DatasetError(f"{path}: file name does not follow the Market-1501 pattern PPPP_cCsS_FFFFFF_BB.jpg")
    pid, cam = int(m.group(1)), int(m.group(2))
    if cam < 1:
        raise DatasetError(f"{path}: camera number must start at 1, got c{cam}")
    return pid, cam - 1


class Market1501(ReidDataset):
    name = "market1501"
    layout = (
        "  ROOT/bounding_box_train/0002_c1s1_000451_03.jpg ...\n"
        "  ROOT/query/0001_c1s1_001051_00.jpg ...\n"
        "  ROOT/bounding_box_test/0001_c1s1_001051_03.jpg ... (id 0000 = distractor, -1 = junk)"
    )
    folders = {"train": "bounding_box_train", "query": "query", "gallery": "bounding_box_test"}

    def __init__(self, root: str | Path):
        root = Path(root).expanduser()
        # The archive unpacks to Market-1501-v15.09.15/; accept the parent folder too.
        nested = root / "Market-1501-v15.09.15"
        super().__init__(nested if nested.is_dir() and not (root / "query").is_dir() else root)

    def required_paths(self) -> list[Path]:
        return [self.root / f for f in self.folders.values()]

    def _read_split(self, split: str) -> list[ImageRecord]:
        records = []
        for path in list_images(self.root / self.folders[split]):
            pid, camid = parse_market_name(path)
            if split == "train" and pid < 1:
                continue  # distractors and junk never train
            if split == "query" and pid < 1:
                raise DatasetError(f"{path}: query images must have a real identity (id >= 1)")
            records.append(ImageRecord(path, pid, camid))
        return records
