r"""Pretrained feature extractors loaded from a weights file the user names (nothing downloads).

``inception``
    torchvision's Inception v3 (Szegedy et al., *Rethinking the Inception Architecture*, CVPR
    2016), the 2048 activations of its final average pool (the "pool3" features of the FID,
    Heusel et al., NeurIPS 2017). Preprocessing follows clean-fid's ``clean`` mode (Parmar et al.,
    *On Aliased Resizing and Surprising Subtleties in GAN Evaluation*, CVPR 2022): images in
    [0, 1] are quantised to 0..255 (``round``), grey images repeated to three channels, resized
    to 299 x 299 with an antialiased bicubic filter (torch's, in float: clean-fid uses PIL's
    bicubic in float mode; the two agree to within interpolation round-off), then mapped to
    [-1, 1] as Inception expects. With torchvision's architecture and its ImageNet weights
    (``inception_v3_google-0cc3c7bd.pth``) the distance is an Inception FD, *not* the published
    FID (which uses the TensorFlow graph's weights and pytorch-fid's modified blocks).
``dinov2``
    A DINOv2 ViT (Oquab et al., 2023) with the architecture of ``timm`` (``arch``, default
    ``vit_small_patch14_dinov2``), the class token of the last layer as features, as in
    dgm-eval (Stein et al., *Exposing flaws of generative model evaluation metrics*, NeurIPS
    2023): images in [0, 1], grey repeated to three channels, resized to 224 x 224 (bicubic,
    antialiased), normalised with ImageNet's mean and standard deviation.

Both take a ``weights`` option: a PyTorch state dict (``.pt``/``.pth``, loaded with
``weights_only=True``; a dict holding it under ``state_dict`` or ``model`` also works) or a
``.safetensors`` file. A missing file, or one that does not fit the architecture, is an error
naming the option. Neither has classes, so the class histogram is skipped.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, cast

import torch
from pydantic import Field
from torch import Tensor, nn
from torch.nn import functional as F

from hierot.components import DataSplits
from hierot.errors import HierotError
from hierot.evaluation._files import sha256
from hierot.registry import ComponentOptions, features

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class PretrainedOptions(ComponentOptions):
    """Options of ``inception`` and ``dinov2``."""

    weights: Path = Field(description="the weights file (a state dict or .safetensors)")
    batch_size: int = Field(50, ge=1, description="images per forward pass")


class DinoOptions(PretrainedOptions):
    """Options of ``dinov2``."""

    arch: str = Field("vit_small_patch14_dinov2", description="timm's name of the architecture")


def read_weights(name: str, path: Path) -> dict:
    """The state dict in ``path``; :class:`HierotError` naming ``features.weights`` otherwise."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise HierotError(f"--features {name}: weights file {path} does not exist (the option "
                          "`weights` names a local file; nothing is downloaded)")
    state: Any  # a state dict, or a checkpoint holding one
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            state = load_file(str(path))
        else:
            state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001  (any unreadable file is the user's at fault)
        raise HierotError(f"--features {name}: weights file {path} does not load: "
                          f"{type(exc).__name__}: {exc}") from None
    for key in ("state_dict", "model"):
        if isinstance(state, dict) and isinstance(state.get(key), dict):
            state = state[key]
    if not isinstance(state, dict):
        raise HierotError(f"--features {name}: weights file {path} holds no state dict")
    return state


def load_into(name: str, network: nn.Module, path: Path) -> nn.Module:
    """Load ``path`` into ``network``; an error naming the option when the keys do not fit."""
    state = read_weights(name, path)
    own = network.state_dict()
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    misfit = sorted(k for k in set(own) & set(state)
                    if tuple(own[k].shape) != tuple(state[k].shape))
    if missing or unexpected or misfit:
        raise HierotError(
            f"--features {name}: weights file {path} does not fit the architecture: "
            f"{len(missing)} missing keys {missing[:3]}, {len(unexpected)} unexpected "
            f"{unexpected[:3]}, {len(misfit)} of another shape {misfit[:3]}")
    network.load_state_dict(state)
    return network.eval()


def image_shape(name: str, data: DataSplits) -> tuple[int, ...]:
    shape = tuple(data.shape)
    if len(shape) != 3 or shape[0] not in (1, 3):
        raise HierotError(f"--features {name} needs images (C, H, W) with 1 or 3 channels; this "
                          f"data set's shape is {shape} (use --features classifier)")
    return shape


class PretrainedExtractor:
    """Batches, preprocessing and a network giving ``(n, dim)`` features."""

    def __init__(self, name: str, network: nn.Module, preprocess, dim: int, options, info: dict,
                 device="cpu"):
        self.name, self.network = name, network.to(device)
        self.preprocess, self.dim = preprocess, dim
        self.options, self.device, self._info = options, device, info
        self.classes = None

    @torch.no_grad()
    def features(self, x: Tensor) -> Tensor:
        size = self.options.batch_size
        parts = [self.network(self.preprocess(x[i:i + size].to(self.device))).float().cpu()
                 for i in range(0, len(x), size)]
        return torch.cat(parts).flatten(1)

    def predict(self, f: Tensor) -> None:
        return None

    def info(self) -> dict:
        return {"name": self.name, "dim": self.dim, "weights_file": str(self.options.weights),
                "sha256": sha256(Path(self.options.weights).expanduser()), **self._info}


def three_channels(x: Tensor) -> Tensor:
    return x.expand(-1, 3, -1, -1) if x.shape[1] == 1 else x


def inception_preprocess(x: Tensor) -> Tensor:
    """clean-fid's ``clean`` preprocessing (module docstring), giving [-1, 1] at 299 x 299."""
    x = three_channels((x.clamp(0, 1) * 255).round())
    x = F.interpolate(x, size=(299, 299), mode="bicubic", antialias=True, align_corners=False)
    return (x.clamp(0, 255) - 128.0) / 128.0


def dino_preprocess(x: Tensor) -> Tensor:
    """dgm-eval's DINOv2 preprocessing (module docstring): 224 x 224, ImageNet-normalised."""
    x = F.interpolate(three_channels(x.clamp(0, 1)), size=(224, 224), mode="bicubic",
                      antialias=True, align_corners=False)
    mean = torch.tensor(IMAGENET_MEAN, device=x.device).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD, device=x.device).view(1, 3, 1, 1)
    return (x - mean) / std


def inception_network() -> nn.Module:
    """torchvision's Inception v3 (with its auxiliary head, as its state dicts carry it) with the
    classifier replaced by the identity: the output is the 2048-d pool features."""
    from torchvision.models import inception_v3

    network = inception_v3(weights=None, aux_logits=True, init_weights=False,
                           transform_input=False)
    return network


@features.register("inception", options=PretrainedOptions)
def inception(options: PretrainedOptions, *, data: DataSplits, data_options: dict, seed: int,
              device="cpu") -> PretrainedExtractor:
    """torchvision's Inception v3 pool features (2048-d), FID preprocessing, local weights."""
    image_shape("inception", data)
    network = load_into("inception", inception_network(), options.weights)
    network.fc = nn.Identity()
    network.eval()
    return PretrainedExtractor("inception", network, inception_preprocess, 2048, options,
                               {"architecture": "torchvision inception_v3", "resize": 299},
                               device)


def dino_network(arch: str) -> nn.Module:
    try:
        import timm
    except ImportError:
        raise HierotError("--features dinov2 needs timm: pip install 'hierot[features]'") from None
    try:
        return timm.create_model(arch, pretrained=False, num_classes=0, img_size=224)
    except RuntimeError as exc:
        raise HierotError(f"--features dinov2: arch {arch!r}: {exc}") from None


@features.register("dinov2", options=DinoOptions)
def dinov2(options: DinoOptions, *, data: DataSplits, data_options: dict, seed: int,
           device="cpu") -> PretrainedExtractor:
    """A DINOv2 ViT (timm's architecture, local weights): the class token as features."""
    image_shape("dinov2", data)
    network = load_into("dinov2", dino_network(options.arch), options.weights)
    width = cast(int, network.num_features)  # timm's ViT attribute (a Module's, to mypy)
    return PretrainedExtractor("dinov2", network, dino_preprocess, int(width),
                               options, {"architecture": f"timm {options.arch}", "resize": 224},
                               device)


__all__ = ["DinoOptions", "PretrainedOptions", "dino_preprocess", "inception_preprocess"]
