"""The one folder where things fetched once (a converted detector, a real video) are kept."""

from __future__ import annotations

import os
from pathlib import Path


def cache_root() -> Path:
    """``$DGNET_EDGE_CACHE``, else ``$XDG_CACHE_HOME/dgnet-edge``, else ``~/.cache/dgnet-edge``."""
    explicit = os.environ.get("DGNET_EDGE_CACHE")
    if explicit:
        return Path(explicit).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg).expanduser() if xdg else Path.home() / ".cache") / "dgnet-edge"
