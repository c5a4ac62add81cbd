"""The ``resnet`` network (Appendix B.2, Figure 6a), feature-map latents through the objective,
mixed MLP/convolutional hierarchies, shape errors in the spec, and the convolutional presets."""

from __future__ import annotations

import math
import re

import pytest
import torch
import yaml
from torch import nn

import hierot
from hierot.components import DataSplits, LayerOutputs
from hierot.distributions import Gaussian
from hierot.errors import HierotError, SpecError
from hierot.networks.resnet import ResNet
from hierot.registry import costs, divergences, networks, penalties
from hierot.training.trainer import Trainer

PAPER_SVHN_LATENTS = [(1, 16, 16), (2, 8, 8), (4, 4, 4), (2, 4, 4), (1, 4, 4), (2, 2, 2)]


def options(**values):
    return networks.tagged_options("resnet")(name="resnet", **{"filters": 4, **values})


def resnet(in_shape, out_shape, head="gaussian", **values) -> ResNet:
    return networks.build(options(**values), in_shape=in_shape, out_shape=out_shape, head=head)


def random_data(shape, n=32) -> DataSplits:
    gen = torch.Generator().manual_seed(0)
    return DataSplits(torch.rand(n, *shape, generator=gen), torch.rand(8, *shape, generator=gen))


def conv_layer(shape, filters=4, **decoder):
    return {
        "latent_shape": list(shape),
        "encoder": {"name": "resnet", "filters": filters},
        "decoder": {"name": "resnet", "filters": filters, **decoder},
    }


def small_spec(layers, data="mnist-5k", **extra) -> dict:
    return {
        "data": {"name": data},
        "layers": layers,
        "train": {"batch_size": 8, "steps": 2, "log_every": 1, "progress": False},
        **extra,
    }


# -- the network ----------------------------------------------------------------------------------
MAPS = [
    # in_shape, out_shape, extra options, resampling chosen
    ((3, 32, 32), (1, 16, 16), {}, "down"),
    ((1, 16, 16), (3, 32, 32), {}, "up"),
    ((1, 16, 16), (2, 8, 8), {}, "down"),
    ((4, 4, 4), (2, 4, 4), {}, "none"),
    ((2, 2, 2), (1, 4, 4), {}, "up"),
    ((2, 7, 7), (4, 4, 4), {}, "down"),  # odd sizes round up going down...
    ((4, 4, 4), (2, 7, 7), {}, "up"),  # ... and come back to 2 h - 1 going up
    ((8,), (2, 4, 4), {}, "none"),  # a vector projected to feature maps
    ((8,), (2, 4, 4), {"resample": "up"}, "up"),
    ((2, 4, 4), (8,), {}, "none"),  # feature maps to a vector: last fc
    ((2, 4, 4), (8,), {"resample": "down"}, "down"),
    ((1, 28, 28), (1, 16, 16), {"last": "fc", "resample": "down"}, "down"),
]


@pytest.mark.parametrize("head", ["gaussian", "deterministic"])
@pytest.mark.parametrize(("in_shape", "out_shape", "extra", "mode"), MAPS)
def test_maps_shapes_with_either_head(in_shape, out_shape, extra, mode, head, device):
    net = resnet(in_shape, out_shape, head, **extra).to(device)
    assert net.plan.resample == mode
    x = torch.randn(5, *in_shape, device=device)
    out = net(x)
    assert isinstance(out, Gaussian)
    assert out.mean.shape == (5, *out_shape)
    assert out.deterministic == (head == "deterministic")
    if not out.deterministic:
        assert out.log_var.shape == out.mean.shape
    loss = out.mean.square().sum() + (0 if out.deterministic else out.log_var.exp().sum())
    loss.backward()
    for name, p in net.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), name


def test_figure_6a_structure():
    """M - 1 conv blocks then the resampling convolution; filters doubled down, halved up; skip
    a stride-2 (transposed) convolution when resampling, the identity otherwise."""
    down = resnet((3, 32, 32), (1, 16, 16), filters=8, blocks=3)
    blocks = list(down.body.branch)
    assert len(blocks) == 3
    for block in blocks[:2]:
        conv, bn, relu = block
        assert isinstance(conv, nn.Conv2d) and conv.out_channels == 8 and conv.stride == (1, 1)
        assert isinstance(bn, nn.BatchNorm2d) and isinstance(relu, nn.ReLU)
    assert (
        isinstance(blocks[2], nn.Conv2d)
        and blocks[2].stride == (2, 2)
        and blocks[2].out_channels == 16
    )
    assert isinstance(down.body.skip, nn.Conv2d) and down.body.skip.stride == (2, 2)
    assert isinstance(down.body.after[0], nn.BatchNorm2d) and isinstance(
        down.body.after[1], nn.ReLU
    )
    assert down.head.mean.out_channels == 1 and down.head.log_var.out_channels == 1

    up = resnet((1, 16, 16), (3, 32, 32), "deterministic", filters=8)
    assert (
        isinstance(up.body.branch[-1], nn.ConvTranspose2d) and up.body.branch[-1].out_channels == 4
    )
    assert isinstance(up.body.skip, nn.ConvTranspose2d) and up.head.log_var is None

    same = resnet((4, 4, 4), (2, 4, 4), filters=4)
    assert isinstance(same.body.skip, nn.Identity)  # 4 input channels = 4 filters
    projected = resnet((2, 4, 4), (1, 4, 4), filters=4)
    assert isinstance(projected.body.skip, nn.Conv2d) and projected.body.skip.kernel_size == (1, 1)


def test_sigmoid_output_and_memory_order_do_not_change_values():
    torch.manual_seed(0)
    a = resnet((1, 16, 16), (3, 32, 32), "deterministic", output="sigmoid")
    b = resnet((1, 16, 16), (3, 32, 32), "deterministic", output="sigmoid", channels_last=False)
    b.load_state_dict(a.state_dict())
    x = torch.randn(6, 1, 16, 16)
    ya, yb = a(x).mean, b(x).mean
    assert ((ya >= 0) & (ya <= 1)).all()
    assert ya.is_contiguous(memory_format=torch.channels_last) and yb.is_contiguous()
    torch.testing.assert_close(ya, yb, rtol=1e-5, atol=1e-5)


SHAPE_ERRORS = [
    ((3, 32, 32), (1, 8, 8), {}, "spatial size 32x32 -> 8x8 is not a resampling by 1 or 2"),
    (
        (3, 32, 32),
        (1, 16, 16),
        {"resample": "none"},
        "resample: none takes the input's 32x32 maps to 32x32, not the output's 16x16",
    ),
    (
        (1, 16, 16),
        (3, 32, 32),
        {"resample": "down"},
        "resample: down takes the input's 16x16 maps to 8x8",
    ),
    ((8,), (4,), {}, "maps a vector to a vector; use mlp"),
    ((2, 4, 4), (8,), {"last": "conv"}, "last: conv cannot output the vector (8,); use last: fc"),
    ((2, 4), (8,), {}, "the input (2, 4) is neither a vector (d,) nor a feature map (C, H, W)"),
    ((2, 2, 2), (1, 4, 4), {"filters": 1}, "filters: 1 cannot be halved"),
]


@pytest.mark.parametrize(("in_shape", "out_shape", "extra", "message"), SHAPE_ERRORS)
def test_shape_errors_are_found_before_building(in_shape, out_shape, extra, message):
    opts = options(**extra)
    problem = opts.shape_error(in_shape, out_shape)
    assert problem is not None and message in problem
    with pytest.raises(
        HierotError, match=re.escape(f"resnet cannot map {in_shape} to {out_shape}: ")
    ):
        networks.build(opts, in_shape=in_shape, out_shape=out_shape, head="gaussian")


def test_spec_reports_shape_mismatches_naming_both_layers(tmp_path):
    spec = small_spec([conv_layer((1, 14, 14)), conv_layer((2, 3, 3)), conv_layer((2, 2, 2))])
    spec["layers"][2]["encoder"]["resample"] = "none"
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(spec))
    with pytest.raises(SpecError) as info:
        hierot.load_spec(path)
    assert str(path) in str(info.value)
    assert info.value.lines == [
        ("layers.1.encoder: cannot map layers.0 (z_1) (1, 14, 14) and layers.1 (z_2) (2, 3, 3): "
        "resnet: the spatial size 14x14 -> 3x3 is not a resampling by 1 or 2 (down gives 7x7, "
        "up gives 28x28); with last: fc, choose resample explicitly"),
        ("layers.1.decoder: cannot map layers.0 (z_1) (1, 14, 14) and layers.1 (z_2) (2, 3, 3): "
        "resnet: the spatial size 3x3 -> 14x14 is not a resampling by 1 or 2 (down gives 2x2, "
        "up gives 6x6); with last: fc, choose resample explicitly"),
        ("layers.2.encoder: cannot map layers.1 (z_2) (2, 3, 3) and layers.2 (z_3) (2, 2, 2): "
        "resnet: resample: none takes the input's 3x3 maps to 3x3, not the output's 2x2"),
    ]


def test_spec_checks_the_data_shape_and_kernel_size():
    spec = small_spec([conv_layer((1, 16, 16))])
    with pytest.raises(SpecError) as info:
        hierot.load_spec(spec)
    assert info.value.lines[0].startswith(
        "layers.0.encoder: cannot map data (1, 28, 28) and layers.0 (z_1) (1, 16, 16): resnet:"
    )
    even = small_spec([conv_layer((1, 14, 14))])
    even["layers"][0]["encoder"]["kernel_size"] = 4
    with pytest.raises(SpecError, match="layers.0.encoder.kernel_size: must be odd"):
        hierot.load_spec(even)


# -- feature-map latents through costs, divergences, penalties, objectives -------------------------
@pytest.mark.parametrize("name", costs.names())
def test_costs_flatten_feature_maps(name):
    cost = costs.build(costs.tagged_options(name)(name=name))
    target, rec = torch.rand(4, 2, 3, 3), torch.rand(4, 2, 3, 3)
    torch.testing.assert_close(cost(target, rec), cost(target.flatten(1), rec.flatten(1)))
    torch.testing.assert_close(
        cost(target, rec.contiguous(memory_format=torch.channels_last)), cost(target, rec)
    )


@pytest.mark.parametrize("name", divergences.names())
def test_divergences_flatten_feature_maps(name):
    divergence = divergences.build(divergences.tagged_options(name)(name=name))
    gen = torch.Generator().manual_seed(0)
    z, prior = (
        torch.randn(16, 2, 2, 2, generator=gen) + 0.5,
        torch.randn(16, 2, 2, 2, generator=gen),
    )
    torch.manual_seed(0)
    as_maps = divergence(z.contiguous(memory_format=torch.channels_last), prior)
    torch.manual_seed(0)
    as_vectors = divergence(z.flatten(1), prior.flatten(1))
    torch.testing.assert_close(as_maps, as_vectors)


@pytest.mark.parametrize("name", penalties.names())
def test_penalties_sum_over_feature_maps(name):
    penalty = penalties.build(penalties.tagged_options(name)(name=name), num_layers=2)
    maps = [
        Gaussian(torch.zeros(4, 1, 4, 4), torch.randn(4, 1, 4, 4)),
        Gaussian(torch.zeros(4, 8), torch.randn(4, 8)),
    ]
    flat = [Gaussian(g.mean.flatten(1), g.log_var.flatten(1)) for g in maps]
    torch.testing.assert_close(penalty(LayerOutputs(maps)), penalty(LayerOutputs(flat)))


@pytest.mark.parametrize("objective", ["stacked-wae", "wae"])
def test_objectives_train_feature_map_latents(objective):
    spec = hierot.load_spec(
        small_spec(
            [
                conv_layer((1, 14, 14), output="sigmoid"),
                conv_layer((2, 7, 7)),
                conv_layer((2, 4, 4)),
            ],
            objective={"name": objective},
            penalties=[{"name": "abs-log-var"}],
        )
    )
    built = hierot.build(spec, data=random_data((1, 28, 28)))
    terms = built.objective(built.data.train_x[:8])
    assert all(torch.isfinite(v) for v in terms.weighted.values())
    terms.total.backward()
    model = built.model
    # Eq. (7) does not depend on the encoders above q(z_1 | x)
    trained = [model.encoders[0], *model.decoders] if objective == "wae" else [model]
    grads = [p.grad for module in trained for p in module.parameters()]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)
    assert built.model.generate(3).shape == (3, 1, 28, 28)


def test_mixed_hierarchy_conv_near_pixels_mlp_on_top():
    """resnet on the pixels, mlp from a feature map to a vector, resnet from a vector to a map."""
    layers = [
        conv_layer((1, 14, 14), output="sigmoid") | {"decoder_head": "deterministic"},
        conv_layer((2, 7, 7)),
        {
            "latent_shape": [8],
            "encoder": {"name": "mlp", "hidden": [16]},
            "decoder": {"name": "mlp", "hidden": [16]},
        },
        {
            "latent_shape": [2, 2, 2],
            "encoder": {"name": "resnet", "filters": 4},
            "decoder": {"name": "resnet", "filters": 4, "last": "fc"},
        },
        {
            "latent_shape": [2],
            "encoder": {"name": "resnet", "filters": 4},
            "decoder": {"name": "resnet", "filters": 4},
        },
    ]
    spec = hierot.load_spec(small_spec(layers))
    built = hierot.build(spec, data=random_data((1, 28, 28)))
    _encodings, codes = built.model.encode(built.data.train_x[:8])
    assert [tuple(c.shape[1:]) for c in codes] == [(1, 14, 14), (2, 7, 7), (8,), (2, 2, 2), (2,)]
    before = [p.detach().clone() for p in built.model.parameters()]
    result = Trainer(built).fit()
    assert result.steps == 2 and all(math.isfinite(v) for v in result.last_metrics.values())
    changed = [not torch.equal(a, b) for a, b in zip(before, built.model.parameters())]
    assert all(changed)


# -- presets --------------------------------------------------------------------------------------
def test_svhn_preset_is_the_papers_model_and_trains_one_step():
    spec = hierot.load_spec("svhn-stackedwae.v1")
    assert [layer.latent_shape for layer in spec.layers] == PAPER_SVHN_LATENTS
    assert [layer.encoder.filters for layer in spec.layers] == [96] * 3 + [128] * 3
    assert all(layer.encoder.blocks == layer.decoder.blocks == 2 for layer in spec.layers)
    assert (
        spec.layers[0].decoder_head == "deterministic"
        and spec.layers[0].decoder.output == "sigmoid"
    )
    assert spec.data.name == "svhn" and spec.data.splits == ("train", "extra")
    assert spec.divergence.name == "mmd"
    assert (spec.train.batch_size, spec.train.epochs, spec.optimizer.name) == (100, 1000, "adam")
    (penalty,) = spec.penalties
    assert penalty.name == "abs-log-var"
    assert penalty.layer_weights(6) == pytest.approx([10.0 ** -(2 + i) for i in range(1, 7)])
    reconstruction, match = spec.resolved_weights()
    assert reconstruction == pytest.approx([1.0] + [0.1 ** ((p - 1) / 2 + 1) for p in range(1, 6)])
    assert match == 1e-4

    spec = hierot.load_spec(
        "svhn-stackedwae.v1",
        [
            "train.batch_size=8",
            "train.epochs=null",
            "train.steps=1",
            "train.progress=false",
            "device=cpu",
        ],
    )
    built = hierot.build(spec, data=random_data((3, 32, 32), n=8))
    assert [e.plan.resample for e in built.model.encoders] == ["down"] * 3 + ["none"] * 2 + ["down"]
    assert [d.plan.resample for d in built.model.decoders] == ["up"] * 3 + ["none"] * 2 + ["up"]
    _, codes = built.model.encode(built.data.train_x)
    assert [tuple(c.shape[1:]) for c in codes] == PAPER_SVHN_LATENTS
    before = [p.detach().clone() for p in built.model.parameters()]
    result = Trainer(built).fit()
    assert result.steps == 1
    assert set(result.last_metrics) >= {"rec_x", "rec_z5", "match_z6", "pen_abs-log-var"}
    assert all(math.isfinite(v) for v in result.last_metrics.values())
    assert all(not torch.equal(a, b) for a, b in zip(before, built.model.parameters()))


def test_quickstart_conv_builds_on_its_data_shape():
    spec = hierot.load_spec("quickstart-conv")
    assert spec.data.name == "mnist-5k"
    assert all(layer.encoder.name == layer.decoder.name == "resnet" for layer in spec.layers)
    built = hierot.build(spec, data=random_data((1, 28, 28), n=8))
    _, codes = built.model.encode(built.data.train_x)
    assert [tuple(c.shape[1:]) for c in codes] == [layer.latent_shape for layer in spec.layers]
    assert built.model.generate(2).shape == (2, 1, 28, 28)
