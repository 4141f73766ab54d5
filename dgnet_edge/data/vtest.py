"""``vtest.avi``: the one real pedestrian video within reach offline, obtained from Debian.

It is PETS 2009 S2.L1 view 1 (MOTChallenge's PETS09-S2L1): 768x576, 795 frames at 10 frames/s,
people walking across a campus. Debian ships it in ``opencv-doc`` as
``usr/share/doc/opencv-doc/examples/data/vtest.avi``; :func:`fetch_vtest` finds it installed, or
downloads the package with ``apt-get download`` (no root needed, nothing installed), takes the one
file out with ``dpkg-deb --fsys-tarfile``, checks its sha256 and keeps it in the cache
(``CACHE/video/vtest.avi``). Slim images drop /usr/share/doc on install, hence the download.
"""

from __future__ import annotations

import shutil
import subprocess
import tarfile
import tempfile
from pathlib import Path
from typing import Optional

from dgnet_edge.atomic import atomic_open
from dgnet_edge.cache import cache_root
from dgnet_edge.errors import FetchError
from dgnet_edge.manifest import sha256_of
from dgnet_edge.pinned import last_line

PACKAGE = "opencv-doc"
MEMBER = "usr/share/doc/opencv-doc/examples/data/vtest.avi"
SHA256 = "45cddc9490be69345cbdab64ca583be65987e864ca408038e648db99e10516cf"
FRAMES = 795
FETCH_COMMAND = "dgnet-edge data vtest"


def video_path(cache: Optional[Path] = None) -> Path:
    """Where the cached video is (or would be) for the cache folder ``cache`` (default :func:`cache_root`)."""
    return (cache if cache is not None else cache_root()).expanduser() / "video" / "vtest.avi"


def cached_video(cache: Optional[Path] = None) -> Optional[Path]:
    """The cached video when it is there and intact, else None."""
    path = video_path(cache)
    return path if path.is_file() and sha256_of(path) == SHA256 else None


def require_video(cache: Optional[Path] = None) -> Path:
    """The cached video; a FetchError naming the command to run otherwise."""
    path = cached_video(cache)
    if path is None:
        hint = FETCH_COMMAND if cache is None else f"{FETCH_COMMAND} --cache {cache}"
        raise FetchError(f"vtest.avi is not in the cache ({video_path(cache)}): run `{hint}` once")
    return path


def _run(command: list, cwd: Path, what: str) -> bytes:
    if shutil.which(command[0]) is None:
        raise FetchError(f"{what} needs `{command[0]}` (Debian's package tools), which is not on this machine; "
                         f"copy vtest.avi from a Debian machine's {PACKAGE} package and give its path instead")
    done = subprocess.run(command, cwd=cwd, capture_output=True)
    if done.returncode != 0:
        raise FetchError(f"{what} failed: {last_line(done.stderr.decode(errors='replace'))}")
    return done.stdout


def _extract(deb: Path, work: Path) -> Path:
    """The video taken out of the package file ``deb`` into ``work``."""
    tar_bytes = _run(["dpkg-deb", "--fsys-tarfile", str(deb)], work, f"unpacking {deb.name}")
    tar_path = work / "data.tar"
    tar_path.write_bytes(tar_bytes)
    with tarfile.open(tar_path) as archive:
        member = next((m for m in archive.getmembers() if m.name.lstrip("./") == MEMBER and m.isfile()), None)
        if member is None:
            raise FetchError(f"{deb.name} holds no {MEMBER}")
        source = archive.extractfile(member)
        target = work / "vtest.avi"
        with open(target, "wb") as f:
            shutil.copyfileobj(source, f)
    return target


def fetch_vtest(cache: Optional[Path] = None, deb: Optional[Path] = None) -> Path:
    """The cached video, fetched first when missing: from the installed package, the package file
    ``deb``, or ``apt-get download``. Checked against :data:`SHA256`; written atomically."""
    cached = cached_video(cache)
    if cached is not None:
        return cached
    with tempfile.TemporaryDirectory(prefix="dgnet-edge-vtest-") as tmp:
        work = Path(tmp)
        installed = Path("/") / MEMBER
        if deb is not None:
            source = _extract(deb, work)
        elif installed.is_file():
            source = installed
        else:
            _run(["apt-get", "download", PACKAGE], work, f"apt-get download {PACKAGE}")
            debs = sorted(work.glob(f"{PACKAGE}_*.deb"))
            if not debs:
                raise FetchError(f"apt-get download {PACKAGE} wrote no package file")
            source = _extract(debs[0], work)
        digest = sha256_of(source)
        if digest != SHA256:
            raise FetchError(f"{source} is not the vtest.avi this project knows (sha256 {digest}, expected {SHA256})")
        target = video_path(cache)
        with atomic_open(target) as f, open(source, "rb") as src:
            shutil.copyfileobj(src, f)
    return target
