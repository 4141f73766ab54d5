"""DG-Net's generative half: shapes, sizes, norms, losses, ONNX export and the official weight import."""

from __future__ import annotations

import logging
import math
import warnings

import pytest
import torch
from torch import nn

from dgnet_edge.errors import CheckpointError
from dgnet_edge.models import (
    AdaIN,
    DGNet,
    Decoder,
    LayerNorm,
    MultiScaleDiscriminator,
    ReidNet,
    StructureEncoder,
    appearance_from_official,
    appearance_to_official,
    build_resnet,
    create_model,
    discriminator_from_official,
    discriminator_loss,
    discriminator_to_official,
    generator_from_official,
    generator_loss,
    generator_to_official,
    gradient_penalty,
    load_official_dgnet,
    load_official_teacher,
    read_official,
    teacher_from_official,
    teacher_to_official,
)

# ---------------------------------------------------------------------------------------------
# Parameter counts of the official Market-config modules (configs/latest.yaml: gen dim 16,
# n_downsample 2, n_res 4, mlp_dim 512, id_dim 2048; dis dim 32, n_layer 2, n_res 4, 3 scales).
# A conv k x k from a to b channels with bias has b*a*k*k + b parameters.
#
# Structure encoder (official enc_content):
#   stem   1->16 3x3: 16*1*9+16 = 160;  16->32: 32*16*9+32 = 4,640;  32->32: 9,248;  32->64: 18,496
#          -> 32,544
#   4 residual blocks x 2 convs 64->64 3x3: 8 * (64*64*9+64) = 8 * 36,928 = 295,424
#   ASPP   1x1 64->32: 2,080;  3 x (1x1 64->32: 2,080 + 3x3 32->32: 9,248) = 33,984;
#          fuse 1x1 128->128: 128*128+128 = 16,512                                -> 52,576
#   total 32,544 + 295,424 + 52,576 = 380,544  (instance norms have no parameters)
STRUCTURE_PARAMS = 380_544
# Decoder trunk (official dec):
#   4 AdaIN residual blocks x 2 convs 128->128 3x3: 8 * (128*128*9+128) = 8 * 147,584 = 1,180,672
#   up 128->64 5x5: 64*128*25+64 = 204,864 + LayerNorm 2*64 = 128          -> 204,992
#   up  64->32 5x5: 32*64*25+32 = 51,232 + LayerNorm 2*32 = 64             ->  51,296
#   2 x 3x3 32->32: 2 * 9,248 = 18,496;  1x1 32->3: 3*32+3 = 99
#   total 1,180,672 + 204,992 + 51,296 + 18,496 + 99 = 1,455,555
DECODER_TRUNK_PARAMS = 1_455_555
# AdaIN MLPs (official mlp_w1..4, mlp_b1..4), each 2048->512->512->256:
#   2048*512+512 = 1,049,088;  512*512+512 = 262,656;  512*256+256 = 131,328  -> 1,443,072
#   8 MLPs: 11,544,576
MLP_PARAMS = 11_544_576
# Official AdaINGen = enc_content + dec + 8 MLPs = 380,544 + 1,455,555 + 11,544,576 = 13,380,675
GENERATOR_PARAMS = 13_380_675
# Discriminator (official MsImageDis), per scale:
#   1x1 3->32: 3*32+32 = 128;  3 x 3x3 32->32: 3 * 9,248 = 27,744;  3x3 s2 32->64: 18,496
#   4 residual blocks 64: 295,424;  head 1x1 64->1: 65      -> 341,857 per scale
#   3 scales: 1,025,571
DISCRIMINATOR_PARAMS = 1_025_571


def count(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def small_dgnet() -> DGNet:
    """A CPU-sized DG-Net: ResNet-18 E_a (2048-d code), narrow E_s/G/D."""
    torch.manual_seed(0)
    appearance = ReidNet(build_resnet("resnet18", last_stride=1), num_classes=5, bottleneck=16)
    return DGNet(appearance, gen_dim=8, n_res=2, mlp_dim=32, dilations=(1, 2, 3), dis_dim=8, dis_res=1, dis_scales=2)


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """Small convolutions run far faster on one thread than on two when the CPU is shared."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def paper_dgnet() -> DGNet:
    torch.manual_seed(0)
    return DGNet(create_model("dgnet_appearance_r50", 751)).eval()


@pytest.fixture(scope="module")
def small() -> DGNet:
    return small_dgnet().eval()


# ---------------------------------------------------------------------------------------------
# Shapes and sizes
# ---------------------------------------------------------------------------------------------


def test_paper_sizes_match_the_official_modules(paper_dgnet):
    assert count(paper_dgnet.structure) == STRUCTURE_PARAMS
    mlps = sum(count(m) for m in (*paper_dgnet.decoder.mlp_gamma, *paper_dgnet.decoder.mlp_beta))
    assert mlps == MLP_PARAMS
    assert count(paper_dgnet.decoder) - mlps == DECODER_TRUNK_PARAMS
    assert count(paper_dgnet.structure) + count(paper_dgnet.decoder) == GENERATOR_PARAMS
    assert count(paper_dgnet.discriminator) == DISCRIMINATOR_PARAMS


def test_paper_shapes_at_256x128(paper_dgnet):
    x = torch.randn(1, 3, 256, 128)
    with torch.no_grad():
        s = paper_dgnet.structure(x)
        assert s.shape == (1, 128, 64, 32)
        image = paper_dgnet.decoder(s, torch.rand(1, 8192))
        assert image.shape == (1, 3, 256, 128)
        scores = paper_dgnet.discriminator(image)
    assert [tuple(o.shape) for o in scores] == [(1, 1, 64, 32), (1, 1, 32, 16), (1, 1, 16, 8)]
    gammas, betas = paper_dgnet.decoder.adain_params(torch.rand(2, 8192))
    assert gammas.shape == betas.shape == (2, 8 * 128)


def test_small_config_codes_and_swap(small):
    x_a, x_b = torch.randn(2, 3, 128, 64), torch.randn(2, 3, 128, 64)
    with torch.no_grad():
        f_a, s_a = small.encode(x_a)
        f_b, s_b = small.encode(x_b)
        assert f_a.shape == (2, 512 * 4) and s_a.shape == (2, 64, 32, 16)
        torch.testing.assert_close(f_a, small.appearance(x_a).code)
        # ResNet-18 codes: 2048 values, 4 slices of 512 feed the MLPs.
        assert small.decoder.mlp_gamma[0].fc[0].in_features == 512
        assert small.generate(s_a, f_a).shape == (2, 3, 128, 64)
        swapped = small.swap(x_a, x_b)
        torch.testing.assert_close(swapped.x_ba, small.generate(s_b, f_a))
        torch.testing.assert_close(swapped.x_ab, small.generate(s_a, f_b))
        torch.testing.assert_close(small.reconstruct(x_a), small.generate(s_a, f_a))
        assert [tuple(o.shape) for o in small.discriminator(x_a)] == [(2, 1, 32, 16), (2, 1, 16, 8)]


def test_decoder_halves_compose(small):
    s, f = torch.randn(3, 64, 8, 4), torch.rand(3, 2048)
    with torch.no_grad():
        gammas, betas = small.decoder.adain_params(f)
        torch.testing.assert_close(small.decoder.render(s, gammas, betas), small.decoder(s, f))


def test_adain_parameter_order():
    """MLP k reads the k-th contiguous slice of the code; AdaIN layer j takes values [j*C, (j+1)*C)."""
    dec = Decoder(dim=4, code_dim=16, n_res=2, n_upsample=1, mlp_dim=8).eval()
    code = torch.randn(1, 16)
    gammas, betas = dec.adain_params(code)
    per = dec.num_adain_params // 4  # 2 res blocks x 2 layers x 4 channels / 4 MLPs = 4
    for k in range(4):
        torch.testing.assert_close(gammas[:, k * per : (k + 1) * per], dec.mlp_gamma[k](code[:, 4 * k : 4 * k + 4]))
        torch.testing.assert_close(betas[:, k * per : (k + 1) * per], dec.mlp_beta[k](code[:, 4 * k : 4 * k + 4]))
    # Layer 3 (block 1, conv2) must see gammas[:, 12:16]: change only those and only it changes.
    seen = []
    hook = lambda mod, args, out: seen.append(args)  # noqa: E731
    handle = dec.blocks[1].conv2.norm.register_forward_hook(hook)
    dec.render(torch.randn(1, 4, 4, 4), gammas, betas)
    handle.remove()
    torch.testing.assert_close(seen[0][1], gammas[:, 12:16])
    torch.testing.assert_close(seen[0][2], betas[:, 12:16])


def test_state_dict_keys(small):
    keys = set(small.state_dict())
    for key in (
        "appearance.backbone.conv1.weight",
        "appearance.heads.1.classifier.weight",
        "structure.stem.0.conv.weight",
        "structure.blocks.1.conv2.conv.bias",
        "structure.aspp.pointwise.conv.weight",
        "structure.aspp.atrous.2.1.conv.weight",
        "structure.aspp.fuse.conv.bias",
        "decoder.blocks.0.conv1.conv.weight",
        "decoder.up.1.norm.weight",
        "decoder.refine.1.conv.bias",
        "decoder.to_rgb.conv.weight",
        "decoder.mlp_gamma.3.fc.2.bias",
        "decoder.mlp_beta.0.fc.0.weight",
        "discriminator.scales.1.convs.4.conv.weight",
        "discriminator.scales.0.blocks.0.conv2.conv.weight",
        "discriminator.scales.1.head.bias",
    ):
        assert key in keys, key
    # Instance norm and AdaIN hold no state: nothing batch- or run-dependent is saved.
    assert not [k for k in keys if ("running" in k or "norm" in k) and not k.startswith("appearance.") and ".up." not in k]


def test_weight_init():
    torch.manual_seed(0)
    dis = MultiScaleDiscriminator()
    w = dis.scales[0].blocks[0].conv1.conv.weight
    assert abs(w.std().item() - 0.02) < 0.002 and dis.scales[0].head.bias.abs().max() == 0
    enc = StructureEncoder()
    w = enc.blocks[0].conv1.conv.weight  # fan_in 64*9: He std = sqrt(2/576)
    assert abs(w.std().item() - math.sqrt(2 / 576)) < 0.005 and enc.blocks[0].conv1.conv.bias.abs().max() == 0
    ln = Decoder().up[0].norm
    assert 0 <= ln.weight.min() and ln.weight.max() < 1 and ln.bias.abs().max() == 0


# ---------------------------------------------------------------------------------------------
# Norms: per sample, independent of the rest of the batch
# ---------------------------------------------------------------------------------------------


def test_adain_is_instance_norm_plus_per_sample_affine():
    torch.manual_seed(0)
    x, gamma, beta = torch.randn(3, 5, 6, 4) * 3 + 1, torch.randn(3, 5), torch.randn(3, 5)
    out = AdaIN(5)(x, gamma, beta)
    mean = x.mean(dim=(2, 3), keepdim=True)
    var = x.var(dim=(2, 3), unbiased=False, keepdim=True)
    expected = (x - mean) / torch.sqrt(var + 1e-5) * gamma[:, :, None, None] + beta[:, :, None, None]
    torch.testing.assert_close(out, expected, atol=1e-5, rtol=1e-5)
    # Sample 0's output does not depend on the other samples (nor on the batch size).
    other = torch.cat([x[:1], torch.randn(4, 5, 6, 4) * 10])
    out2 = AdaIN(5)(other, torch.cat([gamma[:1], torch.randn(4, 5)]), torch.cat([beta[:1], torch.randn(4, 5)]))
    torch.testing.assert_close(out2[:1], out[:1])
    torch.testing.assert_close(AdaIN(5)(x[:1], gamma[:1], beta[:1]), out[:1])


@pytest.mark.parametrize("training", [True, False])
def test_layer_norm_per_sample(training):
    torch.manual_seed(0)
    ln = LayerNorm(5).train(training)
    with torch.no_grad():
        ln.bias.normal_()
    x = torch.randn(3, 5, 4, 4) * 2 + 3
    out = ln(x)
    flat = x.flatten(1)
    mean = flat.mean(1).view(-1, 1, 1, 1)
    std = flat.std(1).view(-1, 1, 1, 1)  # unbiased, eps added to the standard deviation
    expected = (x - mean) / (std + 1e-5) * ln.weight.view(1, -1, 1, 1) + ln.bias.view(1, -1, 1, 1)
    torch.testing.assert_close(out, expected)
    other = torch.cat([x[:1], 100 * torch.randn(2, 5, 4, 4)])
    torch.testing.assert_close(ln(other)[:1], out[:1])
    torch.testing.assert_close(ln(x[:1]), out[:1])


def test_decoder_output_independent_of_batch(small):
    s, f = torch.randn(4, 64, 8, 4), torch.rand(4, 2048)
    with torch.no_grad():
        batch = small.decoder(s, f)
        alone = small.decoder(s[2:3], f[2:3])
        swapped_rest = small.decoder(torch.cat([s[2:3], torch.randn(2, 64, 8, 4)]), torch.cat([f[2:3], torch.rand(2, 2048)]))
    torch.testing.assert_close(alone, batch[2:3], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(swapped_rest[:1], batch[2:3], atol=1e-5, rtol=1e-5)


def test_gray_conversion(small):
    x = torch.randn(2, 3, 128, 64)
    enc = small.structure
    torch.testing.assert_close(enc.to_gray(x), (x[:, :1] + x[:, 1:2] + x[:, 2:]) / 3)
    with torch.no_grad():
        torch.testing.assert_close(enc(x), enc.forward_gray(x.mean(dim=1, keepdim=True)))
        # Only the channel mean matters: a colour shift summing to zero leaves the code unchanged.
        shift = torch.tensor([0.5, -0.2, -0.3]).view(1, 3, 1, 1)
        torch.testing.assert_close(enc(x + shift), enc(x), atol=1e-5, rtol=1e-5)
    assert enc.stem[0].conv.in_channels == 1


def test_edge_input():
    """``input="edges"``: the stem sees a soft edge map, blind to brightness, with the same weights."""
    torch.manual_seed(0)
    gray_enc, edge_enc = StructureEncoder(8), StructureEncoder(8, input="edges")
    assert list(edge_enc.state_dict()) == list(gray_enc.state_dict())  # no new keys: the filter is fixed
    edge_enc.load_state_dict(gray_enc.state_dict())
    x = torch.randn(2, 3, 128, 64)
    gray = edge_enc.to_gray(x)
    edges = edge_enc.edges(gray)
    assert edges.shape == gray.shape and 0 <= edges.min() and edges.max() < 1
    with torch.no_grad():
        torch.testing.assert_close(edge_enc(x), gray_enc.forward_gray(edges))
        # Which side of an outline is the brighter one is gone: the photographic negative has the same
        # code (the gray code only forgets a global offset and contrast, in its instance norms).
        torch.testing.assert_close(edge_enc(-x), edge_enc(x), atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(gray_enc(2 * x + 0.7), gray_enc(x), atol=1e-4, rtol=1e-4)
        assert (gray_enc(-x) - gray_enc(x)).abs().max() > 0.1
    bar = torch.zeros(1, 1, 32, 16)
    bar[..., 10:20, :] = 1.0
    torch.testing.assert_close(edge_enc.edges(bar), edge_enc.edges(-bar))
    flat = edge_enc.edges(torch.full((1, 1, 32, 16), 0.3))
    assert flat.max() < 0.01 and edge_enc.edges(bar)[0, 0, 10, 8] > 0.5  # flat: no edge; the bar's rim: one
    with pytest.raises(ValueError, match="input must be one of"):
        StructureEncoder(8, input="canny")


# ---------------------------------------------------------------------------------------------
# LSGAN losses
# ---------------------------------------------------------------------------------------------


class LinearD(nn.Module):
    """Two "scales", each a fixed linear functional of the image: out_s = <W_s, x> per sample."""

    def __init__(self, weights: list[torch.Tensor]):
        super().__init__()
        self.weights = nn.ParameterList(nn.Parameter(w) for w in weights)

    def forward(self, x):
        return [(x * w).sum(dim=(1, 2, 3)).view(-1, 1, 1, 1) for w in self.weights]


def test_discriminator_loss_on_a_linear_d():
    torch.manual_seed(0)
    w1, w2 = torch.randn(3, 2, 2), torch.randn(3, 2, 2)
    d = LinearD([w1.clone(), w2.clone()])
    fake, real = torch.randn(4, 3, 2, 2), torch.randn(4, 3, 2, 2)
    loss = discriminator_loss(d, fake, real, gp_weight=0.01)
    # By hand: out = <W, x>; d out.sum() / d x_b = W for every sample, so the per-sample squared
    # gradient norm is sum(W^2) and its batch mean is the same.
    adversarial = penalty = 0.0
    for w in (w1, w2):
        out_fake = (fake * w).sum(dim=(1, 2, 3))
        out_real = (real * w).sum(dim=(1, 2, 3))
        adversarial += (out_fake**2).mean() + ((out_real - 1) ** 2).mean()
        penalty += 0.01 * (w**2).sum()
    torch.testing.assert_close(loss.adversarial, adversarial)
    torch.testing.assert_close(loss.penalty, penalty)
    torch.testing.assert_close(loss.total, adversarial + penalty)
    # The penalty is differentiable w.r.t. D's weights: d/dW of 0.01*sum(W^2) = 0.02*W.
    loss.penalty.backward()
    torch.testing.assert_close(d.weights[0].grad, 0.02 * w1)
    g = generator_loss(d, fake)
    expected = sum(2 * (((fake * w).sum(dim=(1, 2, 3)) - 1) ** 2).mean() for w in (w1, w2))
    torch.testing.assert_close(g, expected)


def test_gradient_penalty_of_a_quadratic_d():
    torch.manual_seed(0)
    w = torch.randn(2, 3, 3)
    x = torch.randn(5, 2, 3, 3, requires_grad=True)
    out = (x * w).sum(dim=(1, 2, 3)) ** 2  # grad = 2 <w, x> w
    expected = (4 * (x * w).sum(dim=(1, 2, 3)) ** 2 * (w**2).sum()).detach()
    torch.testing.assert_close(gradient_penalty(out, x), expected)


def test_discriminator_loss_on_the_real_network(small):
    d = small.discriminator.train()
    fake, real = torch.randn(2, 3, 64, 32), torch.randn(2, 3, 64, 32)
    loss = discriminator_loss(d, fake, real)
    assert loss.total.requires_grad and loss.penalty.item() > 0
    loss.total.backward()
    assert all(p.grad is not None for p in d.parameters())
    assert not real.requires_grad  # the caller's tensor is left alone
    d.zero_grad()


# ---------------------------------------------------------------------------------------------
# ONNX: dynamic batch, ONNX Runtime == torch
# ---------------------------------------------------------------------------------------------


class _DecoderGraph(nn.Module):
    def __init__(self, decoder):
        super().__init__()
        self.decoder = decoder

    def forward(self, structure, appearance):
        return self.decoder(structure, appearance)


@pytest.mark.parametrize("part", ["structure", "decoder"])
def test_onnx_export_dynamic_batch(part, small, tmp_path):
    onnx = pytest.importorskip("onnx")
    ort = pytest.importorskip("onnxruntime")
    if part == "structure":
        module, names, make = small.structure, ["images"], lambda b: (torch.randn(b, 3, 128, 64),)
    else:
        module, names = _DecoderGraph(small.decoder).eval(), ["structure", "appearance"]
        make = lambda b: (torch.randn(b, 64, 32, 16), torch.rand(b, 2048))  # noqa: E731
    path = tmp_path / f"{part}.onnx"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation and tracer notes
        # TorchScript exporter: opset 17 (TensorRT 8.5/8.6); the dynamo exporter emits opset 18.
        torch.onnx.export(
            module, make(2), str(path), input_names=names, output_names=["out"],
            dynamic_axes={n: {0: "batch"} for n in [*names, "out"]}, opset_version=17, dynamo=False,
        )
    onnx.checker.check_model(onnx.load(str(path)))
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    for batch in (1, 3):
        inputs = make(batch)
        with torch.no_grad():
            expected = module(*inputs).numpy()
        (got,) = session.run(None, {n: t.numpy() for n, t in zip(names, inputs)})
        assert got.shape == expected.shape
        assert abs(got - expected).max() <= 1e-4


# ---------------------------------------------------------------------------------------------
# Official weights: key names, round trips, errors
# ---------------------------------------------------------------------------------------------

# Representative official keys and shapes (Market config), from the official module trees.
OFFICIAL_GEN_KEYS = {
    "enc_content.model.0.conv.weight": (16, 1, 3, 3),
    "enc_content.model.1.conv.bias": (32,),
    "enc_content.model.3.conv.weight": (64, 32, 3, 3),
    "enc_content.model.4.model.0.model.0.conv.weight": (64, 64, 3, 3),
    "enc_content.model.4.model.3.model.1.conv.bias": (64,),
    "enc_content.model.5.conv1.conv.weight": (32, 64, 1, 1),
    "enc_content.model.5.conv6.0.conv.weight": (32, 64, 1, 1),
    "enc_content.model.5.conv12.1.conv.weight": (32, 32, 3, 3),
    "enc_content.model.5.conv18.1.conv.bias": (32,),
    "enc_content.model.5.fuse.conv.weight": (128, 128, 1, 1),
    "dec.model.1.model.0.model.0.conv.weight": (128, 128, 3, 3),
    "dec.model.1.model.3.model.1.conv.bias": (128,),
    "dec.model.1.model.2.model.1.norm.running_mean": (128,),
    "dec.model.1.model.3.model.1.norm.running_var": (128,),
    "dec.model.3.conv.weight": (64, 128, 5, 5),
    "dec.model.3.norm.gamma": (64,),
    "dec.model.5.conv.weight": (32, 64, 5, 5),
    "dec.model.5.norm.beta": (32,),
    "dec.model.6.conv.weight": (32, 32, 3, 3),
    "dec.model.7.conv.bias": (32,),
    "dec.model.8.conv.weight": (3, 32, 1, 1),
    "mlp_w1.model.0.fc.weight": (512, 2048),
    "mlp_w1.model.1.fc.weight": (512, 512),
    "mlp_w4.model.2.fc.weight": (256, 512),
    "mlp_b3.model.2.fc.bias": (256,),
    "mlp_b4.model.0.fc.bias": (512,),
}
OFFICIAL_GEN_KEY_COUNT = 4 * 2 + 8 * 2 + 8 * 2 + 8 * 4 + 2 * 4 + 3 * 2 + 8 * 6  # = 134
# enc_content: 4 stem convs (w, b) + 8 residual convs + 8 ASPP convs (1x1, 3 x (1x1, 3x3), fuse);
# dec: 8 AdaIN convs (w, b,
# running_mean, running_var) + 2 up convs with LayerNorm (w, b, gamma, beta) + 3 convs; 8 MLPs x 3
# Linear layers x (w, b).
OFFICIAL_DIS_KEYS = {
    "cnns.0.0.conv.weight": (32, 3, 1, 1),
    "cnns.0.2.conv.weight": (32, 32, 3, 3),
    "cnns.0.4.conv.weight": (64, 32, 3, 3),
    "cnns.1.5.model.0.conv.weight": (64, 64, 3, 3),
    "cnns.2.8.model.1.conv.bias": (64,),
    "cnns.0.9.weight": (1, 64, 1, 1),
    "cnns.2.9.bias": (1,),
}
OFFICIAL_ID_KEYS = {
    "model.conv1.weight": (64, 3, 7, 7),
    "model.bn1.running_var": (64,),
    "model.layer1.0.downsample.0.weight": (256, 64, 1, 1),
    "model.layer4.0.conv2.weight": (512, 512, 3, 3),
    "model.layer4.2.bn3.num_batches_tracked": (),
    "classifier1.add_block.0.weight": (512, 2048),
    "classifier1.add_block.1.running_mean": (512,),
    "classifier1.add_block.1.num_batches_tracked": (),
    "classifier1.classifier.0.weight": (751, 512),
    "classifier2.add_block.1.weight": (512,),
    "classifier2.classifier.0.bias": (751,),
}
OFFICIAL_TEACHER_KEYS = {
    "model.layer3.5.bn2.bias": (256,),
    "classifier.add_block.0.weight": (512, 2048),
    "classifier.add_block.1.running_var": (512,),
    "classifier.classifier.0.weight": (751, 512),
}


def _check_keys(official: dict, expected: dict) -> None:
    for key, shape in expected.items():
        assert key in official, key
        assert tuple(official[key].shape) == shape, key


def _perturbed(model: nn.Module) -> nn.Module:
    """Every parameter and buffer random, so that a mix-up of two keys cannot go unnoticed."""
    with torch.no_grad():
        for name, t in model.state_dict().items():
            if t.is_floating_point():
                t.copy_(torch.randn_like(t))
    return model


def test_generator_official_round_trip(paper_dgnet):
    model = _perturbed(paper_dgnet)
    official = generator_to_official(model)
    _check_keys(official, OFFICIAL_GEN_KEYS)
    assert len(official) == OFFICIAL_GEN_KEY_COUNT
    result = generator_from_official(official, model)
    ours = model.state_dict()
    assert set(result.state_dict) == {k for k in ours if k.startswith(("structure.", "decoder."))}
    assert all(torch.equal(v, ours[k]) for k, v in result.state_dict.items())
    assert len(result.unused) == 16 and all(k.endswith(("running_mean", "running_var")) for k in result.unused)
    torch.testing.assert_close(official["dec.model.3.norm.gamma"], ours["decoder.up.0.norm.weight"])
    torch.testing.assert_close(official["mlp_b2.model.1.fc.weight"], ours["decoder.mlp_beta.1.fc.1.weight"])
    torch.testing.assert_close(official["enc_content.model.5.conv12.0.conv.bias"], ours["structure.aspp.atrous.1.0.conv.bias"])


def test_discriminator_official_round_trip(paper_dgnet):
    model = _perturbed(paper_dgnet)
    official = discriminator_to_official(model)
    _check_keys(official, OFFICIAL_DIS_KEYS)
    assert len(official) == 3 * (5 + 4 * 2 + 1) * 2  # 3 scales x 14 convs x (w, b)
    result = discriminator_from_official(official, model)
    ours = model.state_dict()
    assert result.unused == [] and len(result.state_dict) == len(official)
    assert all(torch.equal(v, ours[k]) for k, v in result.state_dict.items())
    torch.testing.assert_close(official["cnns.1.9.weight"], ours["discriminator.scales.1.head.weight"])


def test_appearance_and_teacher_official_round_trip(paper_dgnet, caplog):
    net = _perturbed(paper_dgnet.appearance)
    official = appearance_to_official(net)
    _check_keys(official, OFFICIAL_ID_KEYS)
    # The released ft_netAB also holds torchvision's ImageNet classifier, which E_a has no use for.
    official |= {"model.fc.weight": torch.randn(1000, 2048), "model.fc.bias": torch.randn(1000)}
    with caplog.at_level(logging.WARNING, logger="dgnet_edge.models.official"):
        result = appearance_from_official(official, net)
    assert result.unused == ["model.fc.bias", "model.fc.weight"]
    assert "model.fc.weight" in caplog.text
    assert all(torch.equal(v, net.state_dict()[k]) for k, v in result.state_dict.items())
    assert set(result.state_dict) == set(net.state_dict())

    teacher = _perturbed(create_model("dgnet_teacher_r50", 751))
    official = teacher_to_official(teacher)
    _check_keys(official, OFFICIAL_TEACHER_KEYS)
    back = teacher_from_official({f"module.{k}": v for k, v in official.items()}, teacher)  # DataParallel prefix
    assert back.unused == [] and all(torch.equal(v, teacher.state_dict()[k]) for k, v in back.state_dict.items())


def test_every_official_key_maps(paper_dgnet):
    """Each representative official key is consumed by the converter (none ends up unused)."""
    for to_official, from_official, sample in (
        (generator_to_official, generator_from_official, OFFICIAL_GEN_KEYS),
        (discriminator_to_official, discriminator_from_official, OFFICIAL_DIS_KEYS),
    ):
        result = from_official(to_official(paper_dgnet), paper_dgnet)
        placeholders = {k for k in sample if "running_" in k}
        assert not (set(sample) - placeholders) & set(result.unused)
    result = appearance_from_official(appearance_to_official(paper_dgnet.appearance), paper_dgnet.appearance)
    assert not set(OFFICIAL_ID_KEYS) & set(result.unused)


def test_nonlocal_blocks_are_reported_and_skipped(small, caplog):
    official = generator_to_official(small)
    # A non-local block inside a residual block (extra keys) ...
    extra = {
        "dec.model.1.model.0.nonloc.query_conv.weight": torch.randn(8, 64, 1, 1),
        "dec.model.1.model.0.nonloc.gamma": torch.zeros(1),
    }
    # ... and one inserted into the decoder's Sequential after the residual blocks (shifts indices).
    shifted = {}
    for key, value in official.items():
        parts = key.split(".")
        if key.startswith("dec.model.") and int(parts[2]) >= 2:
            parts[2] = str(int(parts[2]) + 1)
        shifted[".".join(parts)] = value
    inserted = {"dec.model.2.query_conv.weight": torch.randn(8, 64, 1, 1), "dec.model.2.gamma": torch.full((1,), 0.3)}
    with caplog.at_level(logging.WARNING, logger="dgnet_edge.models.official"):
        result = generator_from_official(shifted | extra | inserted, small)
    assert set(extra) | set(inserted) <= set(result.unused)
    assert all(torch.equal(v, small.state_dict()[k]) for k, v in result.state_dict.items())
    assert "dec.model.2.gamma" in caplog.text and "outputs will differ" in caplog.text


def test_conversion_errors(paper_dgnet, small):
    official = generator_to_official(paper_dgnet)
    with pytest.raises(CheckpointError, match="enc_content.model.0.conv.weight"):
        generator_from_official(official | {"enc_content.model.0.conv.weight": torch.zeros(16, 3, 3, 3)}, paper_dgnet)
    with pytest.raises(CheckpointError, match="missing.*mlp_w2.model.0.fc.weight"):
        generator_from_official({k: v for k, v in official.items() if k != "mlp_w2.model.0.fc.weight"}, paper_dgnet)
    # Weights of the paper's sizes do not fit a small model: the first mismatching key is named.
    with pytest.raises(CheckpointError, match="has shape"):
        generator_from_official(official, small)
    with pytest.raises(CheckpointError, match="not a DG-Net appearance encoder.*generator"):
        appearance_from_official(official, paper_dgnet.appearance)
    with pytest.raises(CheckpointError, match="none of its keys"):
        discriminator_from_official({"conv.weight": torch.zeros(1)}, paper_dgnet)
    with pytest.raises(CheckpointError, match="not a state dict"):
        teacher_from_official({"x": 1}, paper_dgnet.appearance)
    with pytest.raises(CheckpointError, match="751"):  # another number of identities
        appearance_from_official(appearance_to_official(paper_dgnet.appearance), create_model("dgnet_appearance_r50", 702))
    # Old torch versions saved no num_batches_tracked: filled with 0.
    old = {k: v for k, v in appearance_to_official(paper_dgnet.appearance).items() if not k.endswith("num_batches_tracked")}
    assert appearance_from_official(old, paper_dgnet.appearance).state_dict["backbone.bn1.num_batches_tracked"] == 0


def test_official_files(tmp_path):
    source = _perturbed(small_dgnet())
    torch.save({"a": generator_to_official(source)}, tmp_path / "gen_00100000.pt")
    torch.save({"a": discriminator_to_official(source)}, tmp_path / "dis_00100000.pt")
    torch.save({"a": appearance_to_official(source.appearance)}, tmp_path / "id_00100000.pt")
    target = small_dgnet()
    unused = load_official_dgnet(target, tmp_path / "gen_00100000.pt", tmp_path / "id_00100000.pt", tmp_path / "dis_00100000.pt")
    assert len(unused) == 2 * 2 * 2 and all("running_" in k for k in unused)  # 2 blocks x 2 AdaIN x 2 buffers
    expected = source.state_dict()
    assert all(torch.equal(v, expected[k]) for k, v in target.state_dict().items())

    def teacher_net():
        return ReidNet(build_resnet("resnet18", 1), 5, pool="avg", dropout=(0.5,), bottleneck=16, appearance_code=False)

    teacher = _perturbed(teacher_net())
    torch.save(teacher_to_official(teacher), tmp_path / "net_last.pth")  # a bare state dict
    fresh = teacher_net()
    assert load_official_teacher(fresh, tmp_path / "net_last.pth") == []
    assert all(torch.equal(v, teacher.state_dict()[k]) for k, v in fresh.state_dict().items())

    # Only weights: a pickled object is refused, so are tensors and missing files.
    torch.save({"a": nn.Linear(2, 2)}, tmp_path / "pickled.pt")
    with pytest.raises(CheckpointError, match="weights-only"):
        read_official(tmp_path / "pickled.pt")
    torch.save(torch.zeros(3), tmp_path / "tensor.pt")
    with pytest.raises(CheckpointError, match="not a state dict"):
        read_official(tmp_path / "tensor.pt")
    with pytest.raises(CheckpointError, match="not found"):
        read_official(tmp_path / "absent.pt")
    (tmp_path / "garbage.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError):
        read_official(tmp_path / "garbage.pt")
