"""Converting the released official DG-Net files into the project's checkpoint format.

The release has E_a with its heads in ``id_XXXXXXXX.pt`` (key ``a``), E_s + G in
``gen_XXXXXXXX.pt`` (key ``a``), optionally D in ``dis_XXXXXXXX.pt`` and the teacher in
``net_last.pth``. The converted checkpoint (kind ``dgnet``, and ``teacher`` for the teacher) holds
the weights and the config they belong to, so it evaluates, exports and renders like a checkpoint
trained here; it carries no optimiser state, so training does not resume from it. Official keys
with no place here are listed (and logged), never dropped silently.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

from dgnet_edge.checkpoint import save_checkpoint
from dgnet_edge.config import Config
from dgnet_edge.errors import CheckpointError, UsageError
from dgnet_edge.models import build_dgnet, build_reid_net
from dgnet_edge.models.official import load_official_dgnet, load_official_teacher, read_official
from dgnet_edge.paths import prepare_output_file

log = logging.getLogger(__name__)


@dataclass
class ImportResult:
    checkpoint: Path
    teacher_checkpoint: Path | None
    num_classes: int
    unused: list[str] = field(default_factory=list)


def _classes(state: dict, key: str, path: Path) -> int:
    if key not in state:
        raise CheckpointError(f"{path}: no {key!r}; is it the right file of the release?")
    return int(state[key].shape[0])


def import_official(
    cfg: Config,
    gen: Path,
    id_file: Path,
    out: Path,
    dis: Path | None = None,
    teacher: Path | None = None,
    teacher_out: Path | None = None,
) -> ImportResult:
    """Write ``out`` (kind ``dgnet``) and, with ``teacher``, ``teacher_out`` (kind ``teacher``).

    Every input is read and converted before anything is written, and the outputs are written
    only when all convert, so a bad file (any of them) leaves no checkpoint behind.
    """
    teacher_path = (teacher_out or out.with_name(out.stem + "_teacher.pt")) if teacher is not None else None
    prepare_output_file(out, "output checkpoint")
    if teacher_path is not None:
        if teacher_path.resolve() == out.resolve():
            raise UsageError(f"--teacher-out {teacher_path} is the same file as --out: give another name")
        prepare_output_file(teacher_path, "teacher checkpoint")
    num_classes = _classes(read_official(id_file), "classifier1.classifier.0.weight", id_file)
    model = build_dgnet(cfg, num_classes)
    unused = load_official_dgnet(model, gen, id_file, dis)
    source = {"gen": str(gen), "id": str(id_file), "dis": str(dis) if dis else None}
    models = {name: getattr(model, name).state_dict() for name in ("appearance", "structure", "decoder", "discriminator")}
    common = {"config": cfg.to_dict(), "num_classes": num_classes, "step": 0, "imported": source}
    outputs = [(out, {"kind": "dgnet", "models": models, **common})]
    if teacher is not None:
        teacher_classes = _classes(read_official(teacher), "classifier.classifier.0.weight", teacher)
        if teacher_classes != num_classes:
            raise CheckpointError(f"{teacher}: classifies {teacher_classes} identities, the id file {num_classes}")
        net = build_reid_net(cfg.teacher, num_classes, appearance_code=False)
        unused += [f"{teacher}: {k}" for k in load_official_teacher(net, teacher)]
        outputs.append((teacher_path, {"kind": "teacher", "models": {"teacher": net.state_dict()},
                                       **common, "imported": {"teacher": str(teacher)}}))
    written: list[Path] = []
    try:
        for path, payload in outputs:
            written.append(save_checkpoint(path, payload))
    except BaseException:
        for path in written:
            path.unlink(missing_ok=True)
        raise
    if unused:
        log.warning("%d official key(s) had no place in the project's networks: %s", len(unused), ", ".join(unused))
    return ImportResult(out, teacher_path, num_classes, unused)
