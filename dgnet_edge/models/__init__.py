"""Networks: ResNet trunks, the re-id networks (E_a, teacher), the test-time embedder and DG-Net's
generative half (structure encoder, decoder, discriminator) with the official weight import."""

from dgnet_edge.models.decoder import Decoder
from dgnet_edge.models.dgnet import DGNet, SwapOutput
from dgnet_edge.models.discriminator import (
    DiscriminatorLoss,
    MultiScaleDiscriminator,
    PatchDiscriminator,
    discriminator_loss,
    generator_loss,
    gradient_penalty,
)
from dgnet_edge.models.embedder import ReidEmbedder
from dgnet_edge.models.factory import PRESETS, build_dgnet, build_reid_net, create_model, load_dgnet, load_reid_net
from dgnet_edge.models.layers import ASPP, MLP, AdaIN, ConvBlock, LayerNorm, ResBlock, init_weights
from dgnet_edge.models.official import (
    OfficialImport,
    appearance_from_official,
    appearance_to_official,
    discriminator_from_official,
    discriminator_to_official,
    generator_from_official,
    generator_to_official,
    load_official_dgnet,
    load_official_teacher,
    read_official,
    teacher_from_official,
    teacher_to_official,
)
from dgnet_edge.models.reid import IdHead, ReidNet, ReidOutput
from dgnet_edge.models.resnet import ResNet, build_resnet
from dgnet_edge.models.structure import StructureEncoder

__all__ = [
    "ASPP",
    "MLP",
    "PRESETS",
    "AdaIN",
    "ConvBlock",
    "DGNet",
    "Decoder",
    "DiscriminatorLoss",
    "IdHead",
    "LayerNorm",
    "MultiScaleDiscriminator",
    "OfficialImport",
    "PatchDiscriminator",
    "ReidEmbedder",
    "ReidNet",
    "ReidOutput",
    "ResBlock",
    "ResNet",
    "StructureEncoder",
    "SwapOutput",
    "appearance_from_official",
    "appearance_to_official",
    "build_dgnet",
    "build_reid_net",
    "build_resnet",
    "create_model",
    "discriminator_from_official",
    "discriminator_loss",
    "discriminator_to_official",
    "generator_from_official",
    "generator_loss",
    "generator_to_official",
    "gradient_penalty",
    "init_weights",
    "load_dgnet",
    "load_official_dgnet",
    "load_official_teacher",
    "load_reid_net",
    "read_official",
    "teacher_from_official",
    "teacher_to_official",
]
