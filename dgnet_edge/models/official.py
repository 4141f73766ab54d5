"""Importing the weights released with the official DG-Net code (NVlabs/DG-Net).

The official training writes one file per network, each ``{'a': state_dict}``:

- ``id_XXXXXXXX.pt``: the appearance encoder ``ft_netAB``: ``model.*`` (a torchvision ResNet-50,
  including its unused ImageNet classifier ``model.fc.*``), ``classifier1.*`` and
  ``classifier2.*`` (``add_block.0`` Linear, ``add_block.1`` BatchNorm1d, ``classifier.0`` Linear);
- ``gen_XXXXXXXX.pt``: the generator ``AdaINGen``: ``enc_content.model.*`` (E_s), ``dec.model.*``
  (G's trunk, with placeholder running-stat buffers in its AdaIN layers) and ``mlp_w1..4.*``,
  ``mlp_b1..4.*`` (the AdaIN gamma and beta MLPs);
- ``dis_XXXXXXXX.pt``: the discriminator ``MsImageDis``: ``cnns.{scale}.{layer}.*``;

and the teacher ``net_last.pth`` (``ft_net`` of the Person_reID_baseline_pytorch project) is a
bare state dict: ``model.*`` + ``classifier.add_block.*`` + ``classifier.classifier.*``.

The ``*_from_official`` functions turn such a state dict into this project's keys for a given
module (its shapes are the reference); the ``*_to_official`` functions are the inverse, producing
the official key names (used by the tests, and to hand weights back to the official code).
Official keys this project has no place for (the ImageNet ``model.fc``, the AdaIN placeholder
buffers, non-local attention blocks some released models carry) are returned in
:attr:`OfficialImport.unused` and logged as a warning; a key of the wrong shape, a missing key
or a file of another kind raises :class:`~dgnet_edge.errors.CheckpointError`. Files are read with
``torch.load(weights_only=True)`` only.

Key correspondence (paper config; ``S`` = index of E_s's residual stack = 4, ``n`` = 2
upsampling stages):

    ours (DGNet)                                 official
    appearance.backbone.<k>                      model.<k>                      (id file)
    appearance.heads.{h}.embed.*                 classifier{h+1}.add_block.0.*
    appearance.heads.{h}.bn.*                    classifier{h+1}.add_block.1.*
    appearance.heads.{h}.classifier.*            classifier{h+1}.classifier.0.*
    structure.stem.{i}.conv.*                    enc_content.model.{i}.conv.*   (gen file)
    structure.blocks.{j}.conv{1,2}.conv.*        enc_content.model.S.model.{j}.model.{0,1}.conv.*
    structure.aspp.pointwise.conv.*              enc_content.model.S+1.conv1.conv.*
    structure.aspp.atrous.{0,1,2}.{0,1}.conv.*   enc_content.model.S+1.conv{6,12,18}.{0,1}.conv.*
    structure.aspp.fuse.conv.*                   enc_content.model.S+1.fuse.conv.*
    decoder.blocks.{j}.conv{1,2}.conv.*          dec.model.1.model.{j}.model.{0,1}.conv.*
    decoder.up.{k}.conv.*                        dec.model.{3+2k}.conv.*
    decoder.up.{k}.norm.{weight,bias}            dec.model.{3+2k}.norm.{gamma,beta}
    decoder.refine.{0,1}.conv.*                  dec.model.{2n+2, 2n+3}.conv.*
    decoder.to_rgb.conv.*                        dec.model.{2n+4}.conv.*
    decoder.mlp_gamma.{k}.fc.{l}.*               mlp_w{k+1}.model.{l}.fc.*
    decoder.mlp_beta.{k}.fc.{l}.*                mlp_b{k+1}.model.{l}.fc.*
    discriminator.scales.{s}.convs.{i}.conv.*    cnns.{s}.{i}.conv.*            (dis file)
    discriminator.scales.{s}.blocks.{j}.conv{1,2}.conv.*   cnns.{s}.{C+j}.model.{0,1}.conv.*
    discriminator.scales.{s}.head.*              cnns.{s}.{C+R}.*     (C convs, R residual blocks)
    teacher: backbone.<k> -> model.<k>; heads.0.{embed,bn,classifier} -> classifier.{add_block.0,
             add_block.1, classifier.0}

A non-local block the official code inserts into ``dec.model`` or a discriminator scale shifts
the indices after it; it is recognised, reported as unused and the indices are renumbered.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from pathlib import Path
from typing import NamedTuple

import torch

from dgnet_edge.errors import CheckpointError
from dgnet_edge.models.dgnet import DGNet
from dgnet_edge.models.reid import ReidNet
from dgnet_edge.weights import load_weights_file

log = logging.getLogger(__name__)

_ATROUS_NAMES = ("conv6", "conv12", "conv18")  # official names of the dilation 3, 6, 9 branches
_NONLOCAL_PARTS = ("query_conv.", "key_conv.", "value_conv.", "gamma")
_KINDS = {
    "gen": "a DG-Net generator file (gen_*.pt)",
    "dis": "a DG-Net discriminator file (dis_*.pt)",
    "id": "a DG-Net appearance encoder file (id_*.pt)",
    "teacher": "a teacher file (net_last.pth of Person_reID_baseline_pytorch)",
}


class OfficialImport(NamedTuple):
    state_dict: dict[str, torch.Tensor]  # keys of the target module (see each function)
    unused: list[str]  # official keys this project has no place for


# --------------------------------------------------------------------------------------------
# Key maps: ours -> official, built from the target modules (their layer counts)
# --------------------------------------------------------------------------------------------


def _reid_key_map(net: ReidNet, head_prefix: list[str]) -> dict[str, str]:
    if len(net.heads) != len(head_prefix):
        raise CheckpointError(f"the network has {len(net.heads)} ID heads, the official file format {len(head_prefix)}")
    out = {}
    for key in net.state_dict():
        if key.startswith("backbone."):
            out[key] = "model." + key.removeprefix("backbone.")
            continue
        m = re.fullmatch(r"heads\.(\d+)\.(embed|bn|classifier)\.(\w+)", key)
        if m is None:
            raise ValueError(f"no official name for {key}")
        part = {"embed": "add_block.0", "bn": "add_block.1", "classifier": "classifier.0"}[m[2]]
        out[key] = f"{head_prefix[int(m[1])]}.{part}.{m[3]}"
    return out


def _generator_key_map(model: DGNet) -> dict[str, str]:
    structure, decoder = model.structure, model.decoder
    stem_len = len(structure.stem)
    if len(structure.aspp.atrous) != len(_ATROUS_NAMES):
        raise ValueError(
            f"the official structure encoder has {len(_ATROUS_NAMES)} atrous branches, this one {len(structure.aspp.atrous)}"
        )
    if decoder.mlp_splits != 4:
        raise ValueError(f"the official generator has 4 gamma and 4 beta MLPs, this one {decoder.mlp_splits}")
    n_up = len(decoder.up)
    out = {}
    for key in structure.state_dict():
        if m := re.fullmatch(r"stem\.(\d+)\.(.+)", key):
            off = f"{m[1]}.{m[2]}"
        elif m := re.fullmatch(r"blocks\.(\d+)\.conv([12])\.(.+)", key):
            off = f"{stem_len}.model.{m[1]}.model.{int(m[2]) - 1}.{m[3]}"
        elif m := re.fullmatch(r"aspp\.pointwise\.(.+)", key):
            off = f"{stem_len + 1}.conv1.{m[1]}"
        elif m := re.fullmatch(r"aspp\.atrous\.(\d+)\.([01])\.(.+)", key):
            off = f"{stem_len + 1}.{_ATROUS_NAMES[int(m[1])]}.{m[2]}.{m[3]}"
        elif m := re.fullmatch(r"aspp\.fuse\.(.+)", key):
            off = f"{stem_len + 1}.fuse.{m[1]}"
        else:
            raise ValueError(f"no official name for structure.{key}")
        out[f"structure.{key}"] = f"enc_content.model.{off}"
    for key in decoder.state_dict():
        if m := re.fullmatch(r"blocks\.(\d+)\.conv([12])\.(.+)", key):
            off = f"dec.model.1.model.{m[1]}.model.{int(m[2]) - 1}.{m[3]}"
        elif m := re.fullmatch(r"up\.(\d+)\.conv\.(.+)", key):
            off = f"dec.model.{3 + 2 * int(m[1])}.conv.{m[2]}"
        elif m := re.fullmatch(r"up\.(\d+)\.norm\.(weight|bias)", key):
            off = f"dec.model.{3 + 2 * int(m[1])}.norm.{'gamma' if m[2] == 'weight' else 'beta'}"
        elif m := re.fullmatch(r"refine\.([01])\.(.+)", key):
            off = f"dec.model.{2 * n_up + 2 + int(m[1])}.{m[2]}"
        elif m := re.fullmatch(r"to_rgb\.(.+)", key):
            off = f"dec.model.{2 * n_up + 4}.{m[1]}"
        elif m := re.fullmatch(r"mlp_(gamma|beta)\.(\d+)\.fc\.(\d+)\.(.+)", key):
            off = f"mlp_{'w' if m[1] == 'gamma' else 'b'}{int(m[2]) + 1}.model.{m[3]}.fc.{m[4]}"
        else:
            raise ValueError(f"no official name for decoder.{key}")
        out[f"decoder.{key}"] = off
    return out


def _adain_buffers(model: DGNet) -> dict[str, torch.Tensor]:
    """The official AdaIN layers' placeholder buffers (running_mean 0, running_var 1), by official key."""
    out = {}
    for j in range(len(model.decoder.blocks)):
        for k in (0, 1):
            prefix = f"dec.model.1.model.{j}.model.{k}.norm."
            out[prefix + "running_mean"] = torch.zeros(model.decoder.dim)
            out[prefix + "running_var"] = torch.ones(model.decoder.dim)
    return out


def _discriminator_key_map(model: DGNet) -> dict[str, str]:
    out = {}
    for key in model.discriminator.state_dict():
        m = re.fullmatch(r"scales\.(\d+)\.(convs|blocks|head)\.(.+)", key)
        if m is None:
            raise ValueError(f"no official name for discriminator.{key}")
        scale = model.discriminator.scales[int(m[1])]
        n_convs, n_res = len(scale.convs), len(scale.blocks)
        if m[2] == "convs":
            off = m[3]
        elif b := re.fullmatch(r"(\d+)\.conv([12])\.(.+)", m[3]):
            off = f"{n_convs + int(b[1])}.model.{int(b[2]) - 1}.{b[3]}"
        elif m[2] == "head":
            off = f"{n_convs + n_res}.{m[3]}"
        else:
            raise ValueError(f"no official name for discriminator.{key}")
        out[f"discriminator.{key}"] = f"cnns.{m[1]}.{off}"
    return out


# --------------------------------------------------------------------------------------------
# official -> ours
# --------------------------------------------------------------------------------------------


def _guess_kind(state: Mapping[str, object]) -> str | None:
    keys = list(state)
    if any(k.startswith("enc_content.") for k in keys):
        return "gen"
    if any(k.startswith("cnns.") for k in keys):
        return "dis"
    if any(k.startswith("classifier1.") for k in keys):
        return "id"
    if any(k.startswith("classifier.add_block.") for k in keys):
        return "teacher"
    return None


def _clean(state: object, source: str) -> dict[str, torch.Tensor]:
    """A plain ``{key: tensor}`` dict without DataParallel ``module.`` prefixes; CheckpointError otherwise."""
    if not isinstance(state, Mapping) or not state or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise CheckpointError(f"{source}: not a state dict of tensors")
    return {str(k).removeprefix("module."): v for k, v in state.items()}


def _drop_nonlocal(
    state: dict[str, torch.Tensor], containers: list[str]
) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """Remove non-local blocks that sit directly in a Sequential (``<container>.<i>.query_conv...``)
    and renumber the layers after them; the removed entries are returned apart."""
    removed: dict[str, torch.Tensor] = {}
    for container in containers:
        pattern = re.compile(re.escape(container) + r"\.(\d+)\.(.*)")
        nonlocal_idx = sorted({int(m[1]) for k in state if (m := pattern.fullmatch(k)) and m[2].startswith(_NONLOCAL_PARTS)})
        if not nonlocal_idx:
            continue
        renamed = {}
        for key, value in state.items():
            m = pattern.fullmatch(key)
            if m is None:
                renamed[key] = value
            elif int(m[1]) in nonlocal_idx:
                removed[key] = value
            else:
                idx = int(m[1])
                renamed[f"{container}.{idx - sum(i < idx for i in nonlocal_idx)}.{m[2]}"] = value
        state = renamed
    return state, removed


def _convert(
    state: dict[str, torch.Tensor],
    key_map: dict[str, str],
    reference: Mapping[str, torch.Tensor],
    kind: str,
    source: str,
    removed: dict[str, torch.Tensor] | None = None,
) -> OfficialImport:
    wanted = set(key_map.values())
    if not wanted & set(state):
        found = _guess_kind(state)
        hint = f"; it looks like {_KINDS[found]}" if found and found != kind else ""
        raise CheckpointError(f"{source}: not {_KINDS[kind]}: none of its keys are expected{hint}")
    out: dict[str, torch.Tensor] = {}
    missing: list[str] = []
    for ours, off in key_map.items():
        if off not in state:
            if ours.endswith("num_batches_tracked"):  # older torch versions did not save it
                out[ours] = torch.zeros((), dtype=torch.long)
            else:
                missing.append(off)
            continue
        value, ref = state[off], reference[ours]
        if tuple(value.shape) != tuple(ref.shape):
            raise CheckpointError(
                f"{source}: {off} has shape {tuple(value.shape)}, the model's {ours} needs {tuple(ref.shape)} "
                "(was the model built with other sizes or another number of identities?)"
            )
        out[ours] = value.detach().clone().to(ref.dtype)
    if missing:
        raise CheckpointError(f"{source}: {len(missing)} keys of {_KINDS[kind]} are missing, e.g. {', '.join(missing[:5])}")
    leftover = {k: v for k, v in state.items() if k not in wanted} | (removed or {})
    unused = sorted(leftover)
    if unused:
        log.warning(
            "%s: %d official keys have no place in this model and were not loaded: %s%s",
            source,
            len(unused),
            ", ".join(unused[:8]),
            " ..." if len(unused) > 8 else "",
        )
        # A non-local block adds gamma * attention to its input: with gamma != 0 it changed the
        # official network's outputs, and this architecture has no such block.
        live = sorted(
            k
            for k, v in leftover.items()
            if k.endswith("gamma") and k[: -len("gamma")] + "query_conv.weight" in leftover and bool(v.abs().max() > 0)
        )
        if live:
            log.warning(
                "%s: non-local blocks with non-zero weight (%s) are dropped: outputs will differ from the official network's",
                source,
                ", ".join(live),
            )
    return OfficialImport(out, unused)


def appearance_from_official(state: Mapping[str, torch.Tensor], net: ReidNet, source: str = "id checkpoint") -> OfficialImport:
    """``ft_netAB`` (the ``'a'`` dict of ``id_*.pt``) -> a state dict for ``net`` (E_a, two heads)."""
    key_map = _reid_key_map(net, ["classifier1", "classifier2"])
    return _convert(_clean(state, source), key_map, net.state_dict(), "id", source)


def teacher_from_official(state: Mapping[str, torch.Tensor], net: ReidNet, source: str = "teacher checkpoint") -> OfficialImport:
    """``ft_net`` (``net_last.pth``) -> a state dict for ``net`` (the teacher, one head)."""
    return _convert(_clean(state, source), _reid_key_map(net, ["classifier"]), net.state_dict(), "teacher", source)


def generator_from_official(state: Mapping[str, torch.Tensor], model: DGNet, source: str = "gen checkpoint") -> OfficialImport:
    """``AdaINGen`` (the ``'a'`` dict of ``gen_*.pt``) -> ``structure.*`` and ``decoder.*`` keys of ``model``."""
    key_map = _generator_key_map(model)
    state, removed = _drop_nonlocal(_clean(state, source), ["dec.model"])
    # Non-local blocks inside residual blocks (``...model.{j}.nonloc.*``) shift nothing: they are
    # simply keys without a place here.
    return _convert(state, key_map, model.state_dict(), "gen", source, removed)


def discriminator_from_official(
    state: Mapping[str, torch.Tensor], model: DGNet, source: str = "dis checkpoint"
) -> OfficialImport:
    """``MsImageDis`` (the ``'a'`` dict of ``dis_*.pt``) -> ``discriminator.*`` keys of ``model``."""
    key_map = _discriminator_key_map(model)
    containers = [f"cnns.{s}" for s in range(len(model.discriminator.scales))]
    state, removed = _drop_nonlocal(_clean(state, source), containers)
    return _convert(state, key_map, model.state_dict(), "dis", source, removed)


# --------------------------------------------------------------------------------------------
# ours -> official
# --------------------------------------------------------------------------------------------


def _export(state: Mapping[str, torch.Tensor], key_map: dict[str, str], prefix: str = "") -> dict[str, torch.Tensor]:
    return {off: state[prefix + ours].detach().clone() for ours, off in key_map.items()}


def appearance_to_official(net: ReidNet) -> dict[str, torch.Tensor]:
    """E_a's state dict with ``ft_netAB`` key names (without ``model.fc.*``, which E_a lacks)."""
    return _export(net.state_dict(), _reid_key_map(net, ["classifier1", "classifier2"]))


def teacher_to_official(net: ReidNet) -> dict[str, torch.Tensor]:
    """The teacher's state dict with ``ft_net`` key names (without ``model.fc.*``)."""
    return _export(net.state_dict(), _reid_key_map(net, ["classifier"]))


def generator_to_official(model: DGNet) -> dict[str, torch.Tensor]:
    """E_s + G as an ``AdaINGen`` state dict (with the AdaIN placeholder buffers)."""
    out = _export(model.state_dict(), _generator_key_map(model))
    out.update(_adain_buffers(model))
    return out


def discriminator_to_official(model: DGNet) -> dict[str, torch.Tensor]:
    """D as an ``MsImageDis`` state dict."""
    return _export(model.state_dict(), _discriminator_key_map(model))


# --------------------------------------------------------------------------------------------
# Files
# --------------------------------------------------------------------------------------------


def read_official(path: str | Path) -> dict[str, torch.Tensor]:
    """The state dict of an official file: ``{'a': state}`` files are unwrapped, ``module.``
    prefixes (DataParallel) removed. CheckpointError if it is not a weights-only state dict."""
    path = Path(path).expanduser()
    data = load_weights_file(path, "official weights file")
    if isinstance(data, Mapping) and isinstance(data.get("a"), Mapping):
        data = data["a"]
    elif isinstance(data, Mapping) and isinstance(data.get("state_dict"), Mapping):
        data = data["state_dict"]
    return _clean(data, f"{path} (expected an official DG-Net or teacher weights file)")


def load_official_dgnet(
    model: DGNet, gen_path: str | Path, id_path: str | Path, dis_path: str | Path | None = None
) -> list[str]:
    """Load released official weights (``gen_*.pt``, ``id_*.pt`` and optionally ``dis_*.pt``) into
    ``model``; D keeps its weights when ``dis_path`` is None. Returns the official keys that had no
    place, as ``"<file>: <key>"`` (also logged). Nothing is loaded if any file fails."""
    updates: dict[str, torch.Tensor] = {}
    unused: list[str] = []
    app = appearance_from_official(read_official(id_path), model.appearance, str(id_path))
    updates.update({f"appearance.{k}": v for k, v in app.state_dict.items()})
    unused += [f"{id_path}: {k}" for k in app.unused]
    g = generator_from_official(read_official(gen_path), model, str(gen_path))
    updates.update(g.state_dict)
    unused += [f"{gen_path}: {k}" for k in g.unused]
    if dis_path is not None:
        d = discriminator_from_official(read_official(dis_path), model, str(dis_path))
        updates.update(d.state_dict)
        unused += [f"{dis_path}: {k}" for k in d.unused]
    state = model.state_dict()
    state.update(updates)
    model.load_state_dict(state)
    return unused


def load_official_teacher(net: ReidNet, path: str | Path) -> list[str]:
    """Load a teacher ``net_last.pth`` into ``net``; returns the keys that had no place."""
    result = teacher_from_official(read_official(path), net, str(path))
    net.load_state_dict(result.state_dict)
    return result.unused
