"""Typed, frozen run configuration read from YAML.

A config file may name a base with ``_base_: other.yaml`` (a path relative to the file, or the name
of a built-in config); the file's keys are deep-merged over the base's. Dotted overrides
(``id_train.epochs=3``) are applied last, then the result is validated and frozen. A bad key or
value raises :class:`~dgnet_edge.errors.ConfigError` naming the file, the field and what was
expected. The resolved config is saved beside every run's outputs (:meth:`Config.to_yaml`).

Built-in configs live in the ``configs/`` folder of the project (installed as
``dgnet_edge.configs``): ``synth_small`` (CPU, synthetic world) and ``teacher_market`` (the
paper's teacher on Market-1501).
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from dgnet_edge.errors import ConfigError
from dgnet_edge.yaml_tree import apply_override, load_tree

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


class DataConfig(_Section):
    """Where the images come from and how they are prepared for training and evaluation."""

    dataset: str = Field("market1501", description="dataset reader name (see `dgnet-edge data list`)")
    root: str = Field("data/synth", description="dataset root folder")
    height: int = Field(256, ge=32, le=1024, description="network input height")
    width: int = Field(128, ge=16, le=1024, description="network input width")
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD
    pad: int = Field(10, ge=0, description="zero padding before the random crop (training)")
    flip: bool = Field(True, description="random horizontal flip (training)")
    erasing_p: float = Field(0.5, ge=0.0, le=1.0, description="random erasing probability")
    batch_size: int = Field(8, ge=1)
    workers: int = Field(4, ge=0, description="image decoding threads (0 = main thread)")
    per_identity: int | None = Field(None, ge=1, description="train on at most this many images per identity "
                                     "(a seeded draw; None = all): the data-scarce regime")


class NetConfig(_Section):
    """A re-id network: ResNet trunk, pooling, one ID head per dropout rate."""

    backbone: Literal["resnet18", "resnet34", "resnet50"] = "resnet50"
    last_stride: Literal[1, 2] = 1
    pool: Literal["avg", "max"] = "max"
    bottleneck: int = Field(512, ge=8, description="width of each head's embedding layer")
    dropout: tuple[float, ...] = Field((0.5, 0.75), min_length=1, max_length=2)
    pretrained: str | None = Field(None, description="local path to ImageNet ResNet weights")

    @field_validator("dropout")
    @classmethod
    def _rates(cls, v: tuple[float, ...]) -> tuple[float, ...]:
        if any(not 0.0 <= r < 1.0 for r in v):
            raise ValueError("dropout rates must lie in [0, 1)")
        return v


class IdTrainConfig(_Section):
    """ID (cross-entropy) training of the teacher or of E_a alone (stages `teacher`, `baseline`)."""

    epochs: int = Field(60, ge=1)
    lr: float = Field(0.05, gt=0, description="learning rate of the ID heads")
    backbone_lr_mult: float = Field(0.1, gt=0, description="backbone lr = lr x this")
    momentum: float = Field(0.9, ge=0, lt=1)
    nesterov: bool = True
    weight_decay: float = Field(5e-4, ge=0)
    warmup_epochs: float = Field(0, ge=0, description="linear lr warm-up from 0.1x")
    milestones: tuple[int, ...] = Field((40,), description="epochs at which lr is multiplied by gamma")
    gamma: float = Field(0.1, gt=0, le=1)
    amp: bool = Field(True, description="mixed precision on CUDA (ignored on CPU)")
    clip_grad: float | None = Field(None, gt=0, description="max gradient norm (None = no clipping)")
    log_every: int = Field(20, ge=1, description="iterations between log lines")
    eval_every: int = Field(0, ge=0, description="epochs between evaluations (0 = at the end only)")
    max_minutes: float | None = Field(None, gt=0, description="stop (and save) after this long")

    @model_validator(mode="after")
    def _milestones_sorted(self) -> IdTrainConfig:
        if list(self.milestones) != sorted(set(self.milestones)):
            raise ValueError("milestones must be strictly increasing")
        return self


class GeneratorConfig(_Section):
    """E_s and G (official ``gen`` section)."""

    dim: int = Field(16, ge=4, description="gen.dim: width of E_s's first conv")
    n_downsample: int = Field(2, ge=1, le=4, description="gen.n_downsample")
    n_res: int = Field(4, ge=1, description="gen.n_res")
    mlp_dim: int = Field(512, ge=8, description="gen.mlp_dim")
    dilations: tuple[int, ...] = Field((3, 6, 9), min_length=1, description="ASPP dilations (official: 3, 6, 9)")
    activation: Literal["lrelu", "relu"] = "lrelu"
    pad_type: Literal["reflect", "zero"] = "reflect"
    init: Literal["kaiming", "gaussian", "xavier", "orthogonal"] = "kaiming"
    structure_input: Literal["gray", "edges"] = Field(
        "gray", description="what E_s sees: the gray image (official) or its soft edge map (official single: edge, "
        "differentiable); edges leave brightness to the appearance code")


class DiscriminatorConfig(_Section):
    """D (official ``dis`` section; LSGAN, no norm)."""

    dim: int = Field(32, ge=4, description="dis.dim")
    n_layer: int = Field(2, ge=1, description="dis.n_layer")
    n_res: int = Field(4, ge=0, description="dis.n_res")
    num_scales: int = Field(3, ge=1, description="dis.num_scales")
    gp_weight: float = Field(0.01, ge=0, description="dis.LAMBDA: weight of the gradient penalty on real images")
    activation: Literal["lrelu", "relu"] = "lrelu"
    pad_type: Literal["reflect", "zero"] = "reflect"
    init: Literal["gaussian", "kaiming", "xavier", "orthogonal"] = "gaussian"


class DGNetConfig(_Section):
    """DG-Net training (stage ``dgnet``). Names follow the official ``configs/latest.yaml``; where
    they differ the official name is given first in the description."""

    max_iter: int = Field(100_000, ge=1)
    lr_g: float = Field(1e-4, gt=0, description="lr_g: Adam lr of E_s and G")
    lr_d: float = Field(1e-4, gt=0, description="lr_d: Adam lr of D")
    lr_id: float = Field(0.002, gt=0, description="lr2: SGD lr of E_a's trunk")
    head_lr_mult: float = Field(10.0, gt=0, description="E_a's ID heads learn at lr2 x this")
    beta1: float = Field(0.0, ge=0, lt=1)
    beta2: float = Field(0.999, ge=0, lt=1)
    weight_decay: float = Field(5e-4, ge=0)
    milestones: tuple[int, ...] = Field((60_000, 90_000, 105_000), description="step_size s -> s, 1.5s, 1.75s")
    gamma: float = Field(0.1, gt=0, le=1, description="gamma: lr decay of G and D")
    gamma_id: float = Field(0.1, gt=0, le=1, description="gamma2: lr decay of E_a")
    gan_w: float = Field(1.0, ge=0)
    recon_x_w: float = Field(5.0, ge=0, description="self-reconstruction")
    recon_xp_w: float = Field(5.0, ge=0, description="same-identity reconstruction")
    recon_id_w: float = Field(0.5, ge=0, description="ID loss of the frozen E_a copy on generated images")
    id_w: float = Field(1.0, ge=0)
    pid_w: float = Field(1.0, ge=0, description="ID loss on the positive images")
    recon_f_w: float = Field(0.0, ge=0, description="initial weight of appearance-code reconstruction")
    recon_s_w: float = Field(0.0, ge=0, description="initial weight of structure-code reconstruction")
    recon_x_cyc_w: float = Field(0.0, ge=0, description="initial weight of cycle reconstruction")
    max_w: float = Field(1.0, ge=0, description="final weight of the code reconstructions")
    max_cyc_w: float = Field(2.0, ge=0)
    teacher_w: float = Field(0.0, ge=0, description="initial weight of the teacher (primary) loss")
    max_teacher_w: float = Field(2.0, ge=0)
    fine_w: float = Field(0.2, ge=0, description="B_w: weight of the fine-grained loss")
    kl_w: float = Field(1.0, ge=0, description="T_w: weight of the KL term inside the teacher loss")
    warm_iter: int = Field(30_000, ge=0, description="iteration after which the code/cycle weights grow")
    warm_teacher_iter: int = Field(30_000, ge=0, description="iteration after which the teacher weight grows")
    warm_scale: float = Field(0.0005, ge=0, description="growth of the warm weights per iteration")
    recon_warm_iter: int = Field(0, ge=0, description="iterations at the start that train only E_s and G, on the "
                                 "self and same-identity reconstructions (0 = none, as the official)")
    use_encoder_again: float = Field(0.5, ge=0, le=1, description="probability of training E_s on generated images")
    train_bn: bool = Field(True, description="teacher and frozen E_a copy use batch statistics on generated images")
    appearance_init: Literal["pretrained", "teacher"] = Field(
        "pretrained",
        description="E_a trunk from appearance.pretrained (ImageNet, as the paper) or from the teacher's trunk "
        "(CPU configs without ImageNet weights)",
    )
    pad_mode: Literal["replicate", "constant"] = Field("replicate", description="padding before the random crop (official: edge)")
    amp: bool = Field(True, description="mixed precision on CUDA (ignored on CPU)")
    log_every: int = Field(10, ge=1)
    sample_every: int = Field(5000, ge=0, description="image_save_iter: iterations between sample grids (0 = never)")
    save_every: int = Field(10_000, ge=1, description="snapshot_save_iter")
    swap_every: int = Field(0, ge=0, description="iterations between checks of the teacher's top-1 on swaps, "
                            "logged as `swap` records (0 = only at the end)")
    max_minutes: float | None = Field(None, gt=0, description="stop (and save) after this long")
    generator: GeneratorConfig = GeneratorConfig()
    discriminator: DiscriminatorConfig = DiscriminatorConfig()

    def warm_weight(self, start: float, maximum: float, iteration: int, after: int) -> float:
        """A "0 -> w" weight at ``iteration``: grows by warm_scale per iteration past ``after``.

        A pure function of the iteration, so a resumed run has exactly the weights it had.
        """
        return min(maximum, start + self.warm_scale * max(0, iteration - after))


class DistilConfig(_Section):
    """Stage ``distil``: E_a trained on real images and on a bank of generated images rendered once
    by a frozen DG-Net generator, with the teacher's primary (KL) and the fine-grained losses."""

    steps: int = Field(2000, ge=1, description="optimisation steps")
    source: Literal["swaps", "mixup", "cutmix", "none"] = Field(
        "swaps", description="the generated batch: DG-Net swaps from the bank, or the controls (mixup / CutMix of "
        "two real images, or none: ID loss on real images alone)")
    bank_size: int = Field(16_000, ge=1, description="swaps rendered once into the bank")
    batch_generated: int = Field(16, ge=1, description="generated images per step (the real batch: data.batch_size)")
    init: Literal["scratch", "teacher", "generator"] = Field(
        "scratch", description="E_a's start: random (as the paper's ImageNet start, without ImageNet), the "
        "teacher (its whole network when it is an E_a, as stage baseline trains, else its trunk), or the DG-Net "
        "checkpoint's E_a")
    lr: float = Field(0.05, gt=0, description="SGD lr of the ID heads")
    backbone_lr_mult: float = Field(1.0, gt=0, description="trunk lr = lr x this")
    momentum: float = Field(0.9, ge=0, lt=1)
    weight_decay: float = Field(5e-4, ge=0)
    warmup_steps: int = Field(0, ge=0, description="linear lr warm-up from 0.1x")
    milestones: tuple[int, ...] = Field((), description="steps at which lr is multiplied by gamma")
    gamma: float = Field(0.1, gt=0, le=1)
    teacher_w: float = Field(2.0, ge=0, description="weight of the generated-image loss (official max_teacher_w)")
    kl_w: float = Field(1.0, ge=0, description="T_w: the primary (KL to the teacher) term inside it")
    fine_w: float = Field(0.2, ge=0, description="B_w: the fine-grained term (head 2, structure provider's label)")
    train_bn: bool = Field(True, description="the teacher labels generated batches with batch statistics")
    amp: bool = Field(True, description="mixed precision on CUDA (ignored on CPU)")
    log_every: int = Field(20, ge=1)
    save_every: int = Field(200, ge=1)
    max_minutes: float | None = Field(None, gt=0, description="stop (and save) after this long")

    @model_validator(mode="after")
    def _milestones_sorted(self) -> DistilConfig:
        if list(self.milestones) != sorted(set(self.milestones)):
            raise ValueError("milestones must be strictly increasing")
        return self


class EvalConfig(_Section):
    """Test-time feature extraction and ranking."""

    flip: bool = Field(True, description="sum the features of the image and its mirror")
    alpha: float = Field(0.5, ge=0, description="weight of the fine-grained half of the query feature")
    ap: Literal["standard", "trapezoid"] = "standard"
    rerank: bool = Field(False, description="k-reciprocal re-ranking (k1 20, k2 6, lambda 0.3)")
    batch_size: int = Field(64, ge=1)


class Config(_Section):
    """A whole run: data, the networks, ID and DG-Net training, evaluation."""

    name: str = "run"
    seed: int = 0
    device: str = Field("auto", description="auto | cpu | cuda | cuda:N")
    output_dir: str = Field("runs/{name}", description="where checkpoints and logs go")
    data: DataConfig = DataConfig()
    appearance: NetConfig = NetConfig()
    teacher: NetConfig = NetConfig(pool="avg", dropout=(0.5,))
    id_train: IdTrainConfig = IdTrainConfig()
    dgnet: DGNetConfig = DGNetConfig()
    distil: DistilConfig = DistilConfig()
    eval: EvalConfig = EvalConfig()

    @field_validator("device")
    @classmethod
    def _device(cls, v: str) -> str:
        if v in ("auto", "cpu", "cuda") or (v.startswith("cuda:") and v[5:].isdigit()):
            return v
        raise ValueError("expected auto, cpu, cuda or cuda:N")

    @property
    def out_dir(self) -> Path:
        return Path(self.output_dir.format(name=self.name))

    def to_dict(self) -> dict[str, Any]:
        return self.model_dump(mode="json")

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.to_dict(), sort_keys=False)


def builtin_config_names() -> list[str]:
    return sorted(p.name[:-5] for p in resources.files("dgnet_edge.configs").iterdir() if p.name.endswith(".yaml"))


def resolve_config_path(name_or_path: str | Path, relative_to: Path | None = None) -> Path:
    """A path to an existing file, or the name of a built-in config (``synth_small``)."""
    candidates = [Path(name_or_path)]
    if relative_to is not None:
        candidates.insert(0, relative_to / name_or_path)
    for c in candidates:
        if c.is_file():
            return c
    if Path(name_or_path).is_dir():
        raise ConfigError(f"config {name_or_path!s} is a folder, not a YAML file")
    stem = Path(name_or_path).name.removesuffix(".yaml")
    builtin = resources.files("dgnet_edge.configs") / f"{stem}.yaml"
    if builtin.is_file():
        return Path(str(builtin))
    raise ConfigError(
        f"config {name_or_path!s} not found: give a YAML file or one of the built-in configs "
        f"({', '.join(builtin_config_names())})"
    )


def _describe(err: dict[str, Any]) -> str:
    loc = ".".join(str(p) for p in err["loc"]) or "(top level)"
    if err["type"] == "extra_forbidden":
        return f"field '{loc}': unknown key"
    got = err.get("input")
    got_text = f" (got {got!r})" if not isinstance(got, dict) and got is not None else ""
    return f"field '{loc}': {err['msg']}{got_text}"


def config_from_dict(tree: dict[str, Any], source: str = "<dict>") -> Config:
    try:
        return Config.model_validate(tree)
    except ValidationError as e:
        lines = "\n  ".join(_describe(err) for err in e.errors())
        raise ConfigError(f"{source}: invalid config:\n  {lines}") from None


def load_config(path: str | Path, overrides: list[str] | tuple[str, ...] = ()) -> Config:
    """Read, merge, override, validate and freeze a config."""
    resolved = resolve_config_path(path)
    tree = load_tree(resolved, lambda name, folder: resolve_config_path(name, relative_to=folder))
    for override in overrides:
        apply_override(tree, override)
    source = str(resolved) + (f" (with overrides {', '.join(overrides)})" if overrides else "")
    return config_from_dict(tree, source)
