"""Networks: ResNet trunks, the re-id networks (E_a, teacher) and the test-time embedder."""

from dgnet_edge.models.embedder import ReidEmbedder
from dgnet_edge.models.factory import PRESETS, build_reid_net, create_model
from dgnet_edge.models.reid import IdHead, ReidNet, ReidOutput
from dgnet_edge.models.resnet import ResNet, build_resnet

__all__ = [
    "PRESETS",
    "IdHead",
    "ReidEmbedder",
    "ReidNet",
    "ReidOutput",
    "ResNet",
    "build_reid_net",
    "build_resnet",
    "create_model",
]
