"""Dataset readers by name.

    market1501       Market-1501 (and the synthetic world, written in its layout)
    dukemtmc         DukeMTMC-reID
    msmt17           MSMT17, V1 or V2 detected from the folders on disk (V1 if both); the training
                     split is list_train + list_val, the whole published training set
    cuhk03_detected  CUHK03-NP, detected boxes
    cuhk03_labeled   CUHK03-NP, hand-labelled boxes

Each factory takes the dataset root; see the reader classes for the layouts they accept.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from pathlib import Path

from dgnet_edge.data.cuhk03 import CUHK03NP
from dgnet_edge.data.dataset import ReidDataset
from dgnet_edge.data.dukemtmc import DukeMTMCreID
from dgnet_edge.data.market1501 import Market1501
from dgnet_edge.data.msmt17 import MSMT17
from dgnet_edge.errors import DatasetError

_DATASETS: dict[str, Callable[[Path], ReidDataset]] = {}


def register_dataset(name: str, factory: Callable[[Path], ReidDataset]) -> None:
    if name in _DATASETS:
        raise ValueError(f"dataset {name!r} is already registered")
    _DATASETS[name] = factory


def dataset_names() -> list[str]:
    return sorted(_DATASETS)


def build_dataset(name: str, root: str | Path) -> ReidDataset:
    """The dataset reader called ``name`` on ``root``; DatasetError listing valid names otherwise."""
    try:
        factory = _DATASETS[name]
    except KeyError:
        raise DatasetError(f"unknown dataset {name!r}: expected one of {', '.join(dataset_names())}") from None
    return factory(Path(root))


register_dataset("market1501", Market1501)
register_dataset("dukemtmc", DukeMTMCreID)
register_dataset("msmt17", MSMT17)
register_dataset("cuhk03_detected", partial(CUHK03NP, variant="detected"))
register_dataset("cuhk03_labeled", partial(CUHK03NP, variant="labeled"))
