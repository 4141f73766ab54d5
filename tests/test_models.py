import pytest
import torch

from dgnet_edge.config import NetConfig
from dgnet_edge.errors import CheckpointError
from dgnet_edge.models import PRESETS, ReidEmbedder, build_reid_net, build_resnet, create_model
from dgnet_edge.models.resnet import load_imagenet_weights

# torchvision's parameter counts without the ImageNet classifier (fc).
TRUNK_PARAMS = {"resnet18": 11_176_512, "resnet34": 21_284_672, "resnet50": 23_508_032}


@pytest.mark.parametrize("name", sorted(TRUNK_PARAMS))
def test_trunk_parameter_counts(name):
    assert sum(p.numel() for p in build_resnet(name).parameters()) == TRUNK_PARAMS[name]


def test_torchvision_keys():
    keys = set(build_resnet("resnet50").state_dict())
    for key in ("conv1.weight", "bn1.running_mean", "layer1.0.conv3.weight", "layer4.0.downsample.0.weight", "layer4.2.bn3.bias"):
        assert key in keys


def test_paper_appearance_encoder_shapes_and_size():
    net = create_model("dgnet_appearance_r50", 751).eval()
    # Official ft_netAB without the unused ImageNet fc: trunk + 2 x ClassBlock(2048 -> 512 -> 751).
    head = (2048 * 512 + 512) + 2 * 512 + (512 * 751 + 751)
    assert sum(p.numel() for p in net.parameters()) == TRUNK_PARAMS["resnet50"] + 2 * head
    with torch.no_grad():
        fmap = net.forward_features(torch.randn(2, 3, 256, 128))
        assert fmap.shape == (2, 2048, 16, 8)
        assert net.appearance(fmap).shape == (2, 8192)
    assert [type(h.dropout).__name__ for h in net.heads] == ["Dropout", "Dropout"]
    assert [h.dropout.p for h in net.heads] == [0.5, 0.75]


def test_teacher_is_avg_pool_single_head():
    net = create_model("dgnet_teacher_r50", 751)
    assert net.pool == "avg" and len(net.heads) == 1 and net.feature_dim == 512


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_presets_forward(name):
    net = create_model(name, 10).train()
    out = net(torch.randn(4, 3, 64, 32))
    assert len(out.logits) == len(PRESETS[name].dropout)
    assert all(z.shape == (4, 10) for z in out.logits)
    assert (out.code is not None) == (len(PRESETS[name].dropout) == 2)
    if out.code is not None:
        assert not out.code.requires_grad


def test_last_stride_option():
    for stride, size in ((1, (8, 4)), (2, (4, 2))):
        trunk = build_resnet("resnet18", last_stride=stride)
        assert trunk(torch.randn(1, 3, 128, 64)).shape[-2:] == size


@pytest.mark.parametrize("flip", [False, True])
def test_embedder_matches_manual_protocol(flip):
    torch.manual_seed(0)
    net = build_reid_net(NetConfig(backbone="resnet18", bottleneck=32), 5).eval()
    mean, std = (0.5, 0.4, 0.3), (0.2, 0.25, 0.3)
    images = torch.randint(0, 256, (3, 64, 32, 3), dtype=torch.uint8)
    emb = ReidEmbedder(net, mean, std, flip=flip, with_code=True)
    with torch.no_grad():
        feature, code = emb(images)
        x = (images.permute(0, 3, 1, 2).float() / 255 - torch.tensor(mean).view(1, 3, 1, 1)) / torch.tensor(std).view(1, 3, 1, 1)

        def halves(t):
            p = net.forward_head(net.forward_features(t), pre_logits=True)
            return [torch.nn.functional.normalize(h, dim=1) for h in p]

        expected = halves(x)
        if flip:
            expected = [torch.nn.functional.normalize(a + b, dim=1) for a, b in zip(expected, halves(x.flip(3)))]
        torch.testing.assert_close(feature, torch.cat(expected, 1), atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(code, net.appearance(net.forward_features(x)), atol=1e-5, rtol=1e-5)
    assert torch.allclose(feature[:, :32].norm(dim=1), torch.ones(3), atol=1e-5)


def test_pretrained_weights_load_and_mismatch(tmp_path):
    source = build_resnet("resnet18")
    state = {**source.state_dict(), "fc.weight": torch.zeros(1000, 512), "fc.bias": torch.zeros(1000)}
    torch.save(state, tmp_path / "r18.pth")
    target = build_resnet("resnet18")
    load_imagenet_weights(target, tmp_path / "r18.pth")
    torch.testing.assert_close(target.conv1.weight, source.conv1.weight)
    with pytest.raises(CheckpointError, match="missing"):
        load_imagenet_weights(build_resnet("resnet50"), tmp_path / "r18.pth")
    with pytest.raises(CheckpointError, match="not found"):
        load_imagenet_weights(target, tmp_path / "none.pth")
