"""Training logs: JSON lines and one CSV per record kind (train, eval), TensorBoard if installed."""

from __future__ import annotations

import csv
import json
import logging
import time
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)


class RunLog:
    """Appends records to ``DIR/log.jsonl`` and ``DIR/{kind}.csv``; resumes append to the same files."""

    def __init__(self, out_dir: str | Path, tensorboard: bool = True):
        self.dir = Path(out_dir)
        self.dir.mkdir(parents=True, exist_ok=True)
        self._writer = self._tensorboard() if tensorboard else None

    def _tensorboard(self) -> Any:
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:  # tensorboard is optional
            return None
        return SummaryWriter(str(self.dir / "tensorboard"))

    def write(self, kind: str, step: int, values: dict[str, Any]) -> None:
        record = {"kind": kind, "step": step, "time": round(time.time(), 3), **values}
        with open(self.dir / "log.jsonl", "a") as f:
            f.write(json.dumps(record) + "\n")
        csv_path = self.dir / f"{kind}.csv"
        fields = ["step", *values]
        write_header = not csv_path.exists()
        if not write_header:
            with open(csv_path) as f:
                existing = next(csv.reader(f), [])
            if existing != fields:  # columns changed (e.g. a new loss term): start a new file
                csv_path = csv_path.with_name(f"{kind}-{int(time.time())}.csv")
                write_header = True
        with open(csv_path, "a", newline="") as f:
            w = csv.writer(f)
            if write_header:
                w.writerow(fields)
            w.writerow([step, *values.values()])
        if self._writer is not None:
            for key, value in values.items():
                if isinstance(value, (int, float)):
                    self._writer.add_scalar(f"{kind}/{key}", value, step)

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
