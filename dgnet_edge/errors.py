"""Errors a user can cause and fix.

Every error raised for bad input (a missing dataset folder, a malformed config, a checkpoint for
another model, an engine built for another GPU...) derives from :class:`DgnetEdgeError`. The CLI
prints its message without a traceback and exits with :attr:`DgnetEdgeError.exit_code`; anything
else is a bug and keeps its traceback.
"""

from __future__ import annotations


class DgnetEdgeError(Exception):
    """A problem with the user's input or environment; the message says what to do."""

    exit_code = 1


class UsageError(DgnetEdgeError):
    """Options that contradict each other or cannot be used together."""

    exit_code = 2


class ConfigError(DgnetEdgeError):
    """A config file or override that does not validate."""


class DatasetError(DgnetEdgeError):
    """A dataset folder that is missing, has the wrong layout or holds unparsable names."""


class ImageReadError(DatasetError):
    """An image file that cannot be decoded."""


class CheckpointError(DgnetEdgeError):
    """A checkpoint that is missing, corrupt or made for another model."""


class ExportError(DgnetEdgeError):
    """An export folder or manifest that is missing, inconsistent or of another version."""


class BackendUnavailableError(DgnetEdgeError):
    """A runtime backend that cannot run here (library missing, no GPU, wrong engine)."""


class DeviceError(DgnetEdgeError):
    """A device that was asked for but is not present (e.g. CUDA on a CPU-only machine)."""


class OutputPathError(DgnetEdgeError):
    """An output path that cannot be written: a parent is a file, no permission, read-only disk."""


class InputPathError(DgnetEdgeError):
    """An input path that is missing, or a file where a folder is expected (or the reverse)."""


class SourceError(DgnetEdgeError):
    """A camera or video source that cannot be opened: a bad spec, a missing file, a stream that does not answer."""


class DetectorError(DgnetEdgeError):
    """A person detector that cannot be used: a missing or unreadable model file, an unknown output layout."""


class FetchError(DgnetEdgeError):
    """A download or conversion that failed: no network, a file whose checksum is not the pinned one, a converter fault."""
