"""Dataset readers by name."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from dgnet_edge.data.dataset import ReidDataset
from dgnet_edge.data.market1501 import Market1501
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
