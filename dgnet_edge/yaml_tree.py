"""YAML config trees: ``_base_`` inheritance, deep merging and dotted ``KEY=VALUE`` overrides.

Shared by the training config (:mod:`dgnet_edge.config`) and the camera app's config
(:mod:`dgnet_edge.apps.camera.config`); validation is theirs. Runs on Python 3.8 (the camera app's
side).
"""

from __future__ import annotations

import copy
import logging
from pathlib import Path
from typing import Any, Callable, Dict, Optional, Tuple

import yaml

from dgnet_edge.errors import ConfigError

log = logging.getLogger(__name__)
BASE_KEY = "_base_"
Tree = Dict[str, Any]


def read_yaml(path: Path) -> Tree:
    """The mapping at the top of a YAML file (empty for an empty file)."""
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as e:
        raise ConfigError(f"{path}: not valid YAML: {e}") from None
    except OSError as e:
        raise ConfigError(f"{path}: cannot read: {e.strerror or e}") from None
    if data is None:
        log.warning("%s is empty: every field takes its default value", path)
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping of keys at the top level, got {type(data).__name__}")
    return data


def deep_merge(base: Tree, over: Tree) -> Tree:
    """``over``'s keys over ``base``'s, section by section (neither is changed)."""
    out = copy.deepcopy(base)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def _relative(name: str, relative_to: Path) -> Path:
    path = relative_to / name
    if not path.is_file():
        raise ConfigError(f"{BASE_KEY}: {name} not found beside {relative_to}")
    return path


def load_tree(path: Path, resolve: Optional[Callable[[str, Path], Path]] = None, seen: Tuple[Path, ...] = ()) -> Tree:
    """The file's tree merged over its ``_base_`` chain; ``resolve(name, folder)`` finds a base
    (default: a path relative to the file naming it)."""
    path = path.resolve()
    if path in seen:
        chain = " -> ".join(str(p) for p in (*seen, path))
        raise ConfigError(f"{path}: {BASE_KEY} chain loops: {chain}")
    data = read_yaml(path)
    base_name = data.pop(BASE_KEY, None)
    if base_name is None:
        return data
    base_path = (resolve or _relative)(str(base_name), path.parent)
    return deep_merge(load_tree(base_path, resolve, (*seen, path)), data)


def apply_override(tree: Tree, override: str, example: str = "id_train.epochs=3") -> None:
    """Set a dotted key from ``KEY=VALUE`` (the value read as YAML) in ``tree``."""
    key, sep, raw = override.partition("=")
    if not sep or not key.strip():
        raise ConfigError(f"override {override!r}: expected KEY=VALUE with a dotted key, e.g. {example}")
    try:
        value = yaml.safe_load(raw) if raw.strip() else None
    except yaml.YAMLError as e:
        raise ConfigError(f"override {override!r}: value is not valid YAML: {e}") from None
    set_key(tree, key.strip(), value, f"override {override!r}")


def set_key(tree: Tree, key: str, value: Any, what: str = "") -> None:
    """Set the dotted ``key`` (``tracker.max_lost_s``) in ``tree``; ``what`` names the setting in errors."""
    node = tree
    parts = key.split(".")
    for part in parts[:-1]:
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            raise ConfigError(f"{what or key}: {part!r} is not a section")
        node = child
    node[parts[-1]] = value
