"""The paper's high-pass filtering (HPF) loss.

A small CNN, :class:`HighPassNet`, is trained to reproduce an FFT high-pass filter
(:func:`fft_highpass`) of clean images. Frozen, its intermediate feature maps serve as a perceptual
loss that concentrates on high frequencies: :func:`highpass_loss` / :class:`HighPassLoss` compare the
feature maps after its first and second activations for the output and the target.

* :func:`fft_highpass` - the FFT high-pass target.
* :class:`HighPassNetConfig`, :class:`HighPassNet` - the three-layer network.
* :func:`train_highpass_net`, :func:`evaluate_highpass_net` - fit it and measure the fit.
* :func:`save_highpass_net`, :func:`load_highpass_net`, :func:`read_highpass_net_metadata` -
  safetensors files with the config in the header (never pickle).
* :func:`freeze_highpass_net`, :func:`highpass_loss`, :class:`HighPassLoss` - the loss.

Frequencies. ``radius`` is measured in cycles per pixel by default (``units="fraction"``): the bin
``(ky, kx)`` of an ``H x W`` spectrum has the frequency ``(ky / H, kx / W)`` and its distance to DC is
``sqrt((ky / H)^2 + (kx / W)^2)``, so the radius is a fraction of the image size and 0.5 is the
Nyquist frequency. This makes the filter the same for a 32 x 32 patch and a 512 x 512 image (in cycles
per pixel), which is what a convolutional network, whose response does not know the image size, can
learn. ``units="bins"`` measures the distance in frequency bins, ``sqrt(ky^2 + kx^2)``, instead. The
default :data:`DEFAULT_HIGHPASS_RADIUS` = 0.1 cycles per pixel removes every structure with a period
longer than 10 pixels and keeps edges, textures and noise.
"""

from __future__ import annotations

import copy
import dataclasses
import itertools
import json
import math
import os
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import nn

from ..checkpoint import HIGHPASS_FORMAT, save_checkpoint

__all__ = [
    "DEFAULT_HIGHPASS_RADIUS",
    "HIGHPASS_NET_FORMAT",
    "HighPassLoss",
    "HighPassNet",
    "HighPassNetConfig",
    "evaluate_highpass_net",
    "fft_highpass",
    "freeze_highpass_net",
    "highpass_loss",
    "load_highpass_net",
    "read_highpass_net_metadata",
    "save_highpass_net",
    "train_highpass_net",
]

DEFAULT_HIGHPASS_RADIUS: float = 0.1
"""Cut-off of the high-pass filter, in cycles per pixel (periods longer than 10 pixels are removed)."""

HIGHPASS_NET_FORMAT: str = HIGHPASS_FORMAT
"""Value of the ``format`` key in the safetensors header of a saved :class:`HighPassNet` (see
:mod:`hfpie.checkpoint`)."""

_FORMAT_VERSION = "1"
_PADDING_MODES = ("zeros", "reflect", "replicate", "circular")

_BatchSource = torch.Tensor | Callable[[], torch.Tensor] | Iterable[torch.Tensor]


def _check_images(images: torch.Tensor, name: str, channels: int | None = None) -> None:
    expected = "(N, C, H, W)" if channels is None else f"(N, {channels}, H, W)"
    if not isinstance(images, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor of shape {expected}, got {type(images).__name__}")
    if images.ndim != 4 or (channels is not None and images.shape[1] != channels):
        raise ValueError(f"{name} must have shape {expected}, got shape {tuple(images.shape)}")
    if not images.is_floating_point():
        raise TypeError(f"{name} must be a floating-point tensor of shape {expected}, got {images.dtype}")


# --------------------------------------------------------------------------------------------------
# FFT high-pass filter


def _highpass_transfer(
    height: int,
    width: int,
    radius: float,
    soft: bool,
    units: Literal["fraction", "bins"],
    device: torch.device,
    dtype: torch.dtype,
) -> torch.Tensor:
    frequency_y = torch.fft.fftfreq(height, device=device, dtype=dtype)
    frequency_x = torch.fft.fftfreq(width, device=device, dtype=dtype)
    if units == "bins":
        frequency_y, frequency_x = frequency_y * height, frequency_x * width
    distance = torch.sqrt(frequency_y[:, None] ** 2 + frequency_x[None, :] ** 2)
    if soft:
        return 1.0 - torch.exp(-(distance**2) / (2.0 * radius**2))
    return (distance > radius).to(dtype)


def fft_highpass(
    images: torch.Tensor,
    radius: float = DEFAULT_HIGHPASS_RADIUS,
    soft: bool = False,
    units: Literal["fraction", "bins"] = "fraction",
) -> torch.Tensor:
    """FFT high-pass filter of each channel: zero the frequencies within ``radius`` of DC.

    Computes ``real(ifft2(fft2(x) * mask))`` per channel. The ideal mask (``soft=False``) is 0 for
    frequencies at a distance ``<= radius`` from DC and 1 beyond: the centred circular mask of the
    fftshifted spectrum, built here directly on the unshifted one. ``soft=True`` uses the Gaussian
    high-pass ``1 - exp(-d^2 / (2 radius^2))`` instead, which rings less. Either way DC is removed, so
    every output channel has zero mean. The filter is linear and treats the image as periodic.

    Args:
        images: images, any range (typically [0, 1]).
        radius: cut-off; in cycles per pixel (``units="fraction"``, 0.5 is Nyquist) or in frequency
            bins (``units="bins"``). Positive, or 0 with the ideal mask (removes DC only).
        soft: Gaussian mask instead of the ideal one.
        units: ``"fraction"`` or ``"bins"``, see the module docstring.

    Returns:
        The high-pass signal, signed, with the dtype of ``images``.

    Shape:
        images: (N, C, H, W) -> (N, C, H, W).
    """
    _check_images(images, "images")
    if units not in ("fraction", "bins"):
        raise ValueError(f"units must be 'fraction' or 'bins', got {units!r}")
    if radius < 0 or (soft and radius == 0):
        raise ValueError(f"radius must be positive (or 0 with soft=False), got {radius}")
    compute_dtype = images.dtype if images.dtype in (torch.float32, torch.float64) else torch.float32
    height, width = images.shape[-2:]
    transfer = _highpass_transfer(height, width, radius, soft, units, images.device, compute_dtype)
    spectrum = torch.fft.fft2(images.to(compute_dtype))
    return torch.fft.ifft2(spectrum * transfer).real.to(images.dtype)


# --------------------------------------------------------------------------------------------------
# Network


@dataclass(frozen=True)
class HighPassNetConfig:
    """Architecture of a :class:`HighPassNet`.

    Attributes:
        channels: image channels, in and out.
        widths: channels of the two hidden feature maps.
        kernel_size: odd side of every convolution kernel. With 5 the receptive field is 13 x 13,
            enough to approximate the 0.1 cycles-per-pixel default cut-off.
        padding_mode: padding of the convolutions (``"zeros"``, ``"reflect"``, ``"replicate"`` or
            ``"circular"``). Circular by default, the boundary the FFT target assumes.
    """

    channels: int = 3
    widths: tuple[int, int] = (32, 32)
    kernel_size: int = 5
    padding_mode: str = "circular"

    def __post_init__(self) -> None:
        object.__setattr__(self, "widths", tuple(self.widths))
        if not isinstance(self.channels, int) or self.channels < 1:
            raise ValueError(f"channels must be a positive integer, got {self.channels!r}")
        if len(self.widths) != 2 or any(not isinstance(w, int) or w < 1 for w in self.widths):
            raise ValueError(f"widths must be two positive integers, got {self.widths!r}")
        if not isinstance(self.kernel_size, int) or self.kernel_size < 1 or self.kernel_size % 2 == 0:
            raise ValueError(f"kernel_size must be a positive odd integer, got {self.kernel_size!r}")
        if self.padding_mode not in _PADDING_MODES:
            raise ValueError(f"padding_mode must be one of {_PADDING_MODES}, got {self.padding_mode!r}")

    def to_dict(self) -> dict[str, Any]:
        """The config as a JSON-serialisable dict."""
        values = dataclasses.asdict(self)
        values["widths"] = list(self.widths)
        return values

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> HighPassNetConfig:
        """The config from :meth:`to_dict`'s output; unknown keys raise ``ValueError``."""
        known = {field.name for field in dataclasses.fields(cls)}
        unknown = set(values) - known
        if unknown:
            raise ValueError(
                f"unknown HighPassNetConfig keys {sorted(unknown)}; expected a subset of {sorted(known)}"
            )
        values = dict(values)
        if "widths" in values:
            values["widths"] = tuple(values["widths"])
        return cls(**values)


class HighPassNet(nn.Module):
    """Three-layer CNN trained to map an image to its FFT high-pass signal.

    ``layer1 -> ReLU -> layer2 -> ReLU -> layer3``, all 'same'-size convolutions with bias. The output
    is signed (the last layer is linear).

    Args:
        config: the architecture; the default config if None.

    Shape:
        x: (N, C, H, W) -> (N, C, H, W), C = ``config.channels``.
    """

    def __init__(self, config: HighPassNetConfig | None = None) -> None:
        super().__init__()
        self.config = config if config is not None else HighPassNetConfig()
        channels, (width1, width2), size = self.config.channels, self.config.widths, self.config.kernel_size
        common = {"kernel_size": size, "padding": size // 2, "padding_mode": self.config.padding_mode}
        self.layer1 = nn.Conv2d(channels, width1, **common)
        self.layer2 = nn.Conv2d(width1, width2, **common)
        self.layer3 = nn.Conv2d(width2, channels, **common)

    def features(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The feature maps after the first and second activations (the HPF loss compares these).

        Shape:
            x: (N, C, H, W) -> ((N, widths[0], H, W), (N, widths[1], H, W)).
        """
        _check_images(x, "x", self.config.channels)
        first = F.relu(self.layer1(x))
        second = F.relu(self.layer2(first))
        return first, second

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layer3(self.features(x)[1])

    def extra_repr(self) -> str:
        return f"config={self.config}"


# --------------------------------------------------------------------------------------------------
# Training and evaluation


def _batch_iterator(
    batches: _BatchSource, batch_size: int, patch_size: int | None, generator: torch.Generator
) -> Iterator[torch.Tensor]:
    if isinstance(batches, torch.Tensor):
        _check_images(batches, "batches")
        count, _, height, width = batches.shape
        size = patch_size
        if size is not None and (size > height or size > width):
            raise ValueError(f"patch_size {size} is larger than the images ({height} x {width})")
        while True:
            indices = torch.randint(count, (min(batch_size, count),), generator=generator)
            chosen = batches[indices]
            if size is None:
                yield chosen
                continue
            top = int(torch.randint(height - size + 1, (1,), generator=generator))
            left = int(torch.randint(width - size + 1, (1,), generator=generator))
            yield chosen[..., top : top + size, left : left + size]
    elif callable(batches):
        while True:
            yield batches()
    elif isinstance(batches, Iterable):
        reiterable = iter(batches) is not batches
        while True:
            produced = False
            for batch in batches:
                produced = True
                yield batch
            if not reiterable or not produced:
                raise ValueError(
                    "the batch iterator ran out before the last training step; pass a re-iterable "
                    "(a list, a DataLoader), a callable returning a batch, or a tensor of patches"
                )
    else:
        raise TypeError(
            "batches must be a tensor of patches (N, C, H, W), a callable returning such a batch, "
            f"or an iterable of batches, got {type(batches).__name__}"
        )


def train_highpass_net(
    batches: _BatchSource,
    steps: int = 2000,
    radius: float = DEFAULT_HIGHPASS_RADIUS,
    learning_rate: float = 1e-3,
    seed: int = 0,
    config: HighPassNetConfig | None = None,
    soft: bool = False,
    units: Literal["fraction", "bins"] = "fraction",
    batch_size: int = 16,
    patch_size: int | None = None,
    log_every: int = 100,
    device: torch.device | str | None = None,
) -> tuple[HighPassNet, dict[str, Any]]:
    """Train a :class:`HighPassNet` with Adam to reproduce :func:`fft_highpass` of clean patches.

    Each step draws a batch, computes its FFT high-pass target (per patch) and takes an Adam step on
    the mean squared error. Initialisation and sampling are seeded by ``seed`` without touching the
    global random state.

    Args:
        batches: clean images in [0, 1]: a tensor of patches (N, C, H, W), from which each step draws
            ``batch_size`` random patches (cropped to ``patch_size`` if given); a callable returning a
            batch; or an iterable of batches (re-iterated when exhausted if it is not an iterator).
        steps: number of optimiser steps, >= 1.
        radius, soft, units: the target, see :func:`fft_highpass`.
        learning_rate: Adam learning rate.
        seed: seed of the initialisation and of the sampling from a tensor.
        config: architecture; the default :class:`HighPassNetConfig` if None.
        batch_size, patch_size: sampling from a tensor of patches only.
        log_every: steps between entries of the loss history.
        device: where to train; the device of the first batch if None.

    Returns:
        The trained network in eval mode (its parameters still require grad; :class:`HighPassLoss`
        freezes a copy) and a JSON-serialisable report: ``steps``, ``radius``, ``soft``, ``units``,
        ``learning_rate``, ``seed``, ``config``, ``initial_loss`` (first batch), ``final_loss`` (mean
        of the last ``min(10, steps)`` steps), ``loss_history`` (``[step, loss]`` pairs) and
        ``seconds``.

    Shape:
        each batch: (B, C, H, W), C = ``config.channels``.
    """
    if not isinstance(steps, int) or steps < 1:
        raise ValueError(f"steps must be a positive integer, got {steps!r}")
    if learning_rate <= 0:
        raise ValueError(f"learning_rate must be positive, got {learning_rate}")
    if batch_size < 1 or log_every < 1:
        raise ValueError(f"batch_size and log_every must be positive, got {batch_size} and {log_every}")
    config = config if config is not None else HighPassNetConfig()
    started = time.perf_counter()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        net = HighPassNet(config)
        generator = torch.Generator().manual_seed(seed)
    iterator = _batch_iterator(batches, batch_size, patch_size, generator)
    first_batch = next(iterator)
    _check_images(first_batch, "each batch", config.channels)
    device = first_batch.device if device is None else torch.device(device)
    net.to(device).train()
    optimizer = torch.optim.Adam(net.parameters(), lr=learning_rate)
    losses: list[float] = []
    history: list[list[float]] = []
    for step in range(steps):
        batch = first_batch if step == 0 else next(iterator)
        _check_images(batch, "each batch", config.channels)
        batch = batch.to(device=device, dtype=torch.float32)
        target = fft_highpass(batch, radius, soft=soft, units=units)
        loss = F.mse_loss(net(batch), target)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        value = float(loss.detach())
        if not math.isfinite(value):
            raise FloatingPointError(f"training loss became {value} at step {step}; lower learning_rate")
        losses.append(value)
        if step % log_every == 0 or step == steps - 1:
            history.append([step, value])
    net.eval()
    tail = losses[-min(10, steps) :]
    report = {
        "steps": steps,
        "radius": radius,
        "soft": soft,
        "units": units,
        "learning_rate": learning_rate,
        "seed": seed,
        "config": config.to_dict(),
        "initial_loss": losses[0],
        "final_loss": sum(tail) / len(tail),
        "loss_history": history,
        "seconds": time.perf_counter() - started,
    }
    return net, report


def evaluate_highpass_net(
    net: HighPassNet,
    images: torch.Tensor | Iterable[torch.Tensor],
    radius: float = DEFAULT_HIGHPASS_RADIUS,
    soft: bool = False,
    units: Literal["fraction", "bins"] = "fraction",
    batch_size: int = 16,
) -> dict[str, float]:
    """How well ``net`` reproduces the FFT high-pass target of ``images``.

    PSNR uses a peak of 1, the dynamic range of the input images in [0, 1]; the high-pass target of
    such images lies within [-1, 1] but is usually much smaller, so compare ``psnr`` with
    ``baseline_psnr``, the score of an all-zero output (``10 log10(1 / mean(target^2))``).
    ``correlation`` is the Pearson correlation of all output and target values pooled together.

    Args:
        net: the network (evaluated in eval mode under ``torch.no_grad``; its mode is restored).
        images: a tensor (N, C, H, W) or an iterable of such batches, in [0, 1].
        radius, soft, units: the target, see :func:`fft_highpass`.
        batch_size: batch size when ``images`` is a tensor.

    Returns:
        ``{"psnr", "baseline_psnr", "correlation", "mse", "target_rms"}``.

    Shape:
        images: (N, C, H, W), C = ``net.config.channels``.
    """
    if isinstance(images, torch.Tensor):
        _check_images(images, "images", net.config.channels)
        images = images.split(batch_size)
    device = next(itertools.chain(net.parameters(), net.buffers())).device
    was_training = net.training
    net.eval()
    sums = torch.zeros(6, dtype=torch.float64)  # n, sum o, sum t, sum o^2, sum t^2, sum o t
    try:
        with torch.no_grad():
            for batch in images:
                _check_images(batch, "images", net.config.channels)
                batch = batch.to(device=device, dtype=torch.float32)
                target = fft_highpass(batch, radius, soft=soft, units=units).double().flatten()
                output = net(batch).double().flatten()
                sums += torch.stack(
                    [
                        torch.tensor(float(output.numel()), dtype=torch.float64, device=output.device),
                        output.sum(),
                        target.sum(),
                        (output * output).sum(),
                        (target * target).sum(),
                        (output * target).sum(),
                    ]
                ).cpu()
    finally:
        net.train(was_training)
    count, sum_output, sum_target, sum_output2, sum_target2, sum_product = sums.tolist()
    if count == 0:
        raise ValueError("images is empty; pass at least one image of shape (N, C, H, W)")
    mse = max((sum_output2 - 2.0 * sum_product + sum_target2) / count, 0.0)
    target_power = sum_target2 / count
    covariance = sum_product / count - (sum_output / count) * (sum_target / count)
    variance_output = sum_output2 / count - (sum_output / count) ** 2
    variance_target = sum_target2 / count - (sum_target / count) ** 2
    denominator = math.sqrt(max(variance_output, 0.0) * max(variance_target, 0.0))
    return {
        "psnr": 10.0 * math.log10(1.0 / mse) if mse > 0 else math.inf,
        "baseline_psnr": 10.0 * math.log10(1.0 / target_power) if target_power > 0 else math.inf,
        "correlation": covariance / denominator if denominator > 0 else 0.0,
        "mse": mse,
        "target_rms": math.sqrt(target_power),
    }


# --------------------------------------------------------------------------------------------------
# Files


def save_highpass_net(
    net: HighPassNet, path: str | os.PathLike[str], metadata: dict[str, Any] | None = None
) -> None:
    """Save ``net`` as a safetensors file; its config and ``metadata`` go in the header as JSON.

    Args:
        net: the network (a frozen copy from :func:`freeze_highpass_net` works too).
        path: destination file, conventionally ``*.safetensors``.
        metadata: JSON-serialisable information, e.g. the report of :func:`train_highpass_net`.
    """
    if not isinstance(net, HighPassNet):
        raise TypeError(f"net must be a HighPassNet, got {type(net).__name__}")
    try:
        metadata_json = json.dumps(metadata if metadata is not None else {})
    except (TypeError, ValueError) as error:
        raise ValueError(f"metadata must be JSON-serialisable: {error}") from error
    save_checkpoint(net.state_dict(), path, kind=HIGHPASS_NET_FORMAT, config=net.config.to_dict(),
                    metadata={"format_version": _FORMAT_VERSION, "metadata": metadata_json})


def _read_header(path: str | os.PathLike[str]) -> dict[str, str]:
    from safetensors import safe_open

    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"no HighPassNet file at {path!r}")
    try:
        with safe_open(path, framework="pt") as handle:
            header = handle.metadata() or {}
    except Exception as error:  # safetensors raises its own error types for malformed files
        raise ValueError(
            f"{path!r} is not a safetensors file ({error}); save a HighPassNet with save_highpass_net"
        ) from error
    if header.get("format") != HIGHPASS_NET_FORMAT:
        raise ValueError(
            f"{path!r} is a safetensors file but not a HighPassNet (header format "
            f"{header.get('format')!r}, expected {HIGHPASS_NET_FORMAT!r}); save one with save_highpass_net"
        )
    if header.get("format_version") != _FORMAT_VERSION:
        raise ValueError(
            f"{path!r} has HighPassNet format version {header.get('format_version')!r}; "
            f"this hfpie reads version {_FORMAT_VERSION!r}"
        )
    return header


def read_highpass_net_metadata(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The ``metadata`` that :func:`save_highpass_net` stored in the file at ``path``."""
    header = _read_header(path)
    try:
        return json.loads(header.get("metadata", "{}"))
    except json.JSONDecodeError as error:
        raise ValueError(f"{os.fspath(path)!r} has a corrupt metadata entry: {error}") from error


def load_highpass_net(path: str | os.PathLike[str], device: torch.device | str = "cpu") -> HighPassNet:
    """Load a network saved by :func:`save_highpass_net` (strict: every tensor must match).

    Raises:
        FileNotFoundError: no file at ``path``.
        ValueError: the file is not a safetensors file, not a HighPassNet, or its tensors do not match
            its config.

    Returns:
        The network in eval mode, on ``device``, parameters requiring grad.
    """
    from safetensors.torch import load_file

    header = _read_header(path)
    try:
        config = HighPassNetConfig.from_dict(json.loads(header["config"]))
    except (KeyError, TypeError, ValueError) as error:
        raise ValueError(f"{os.fspath(path)!r} has a missing or invalid HighPassNet config: {error}") from error
    net = HighPassNet(config)
    tensors = load_file(os.fspath(path), device="cpu")
    try:
        net.load_state_dict(tensors, strict=True)
    except RuntimeError as error:
        raise ValueError(f"{os.fspath(path)!r} does not hold the tensors its config describes: {error}") from error
    return net.to(device).eval()


# --------------------------------------------------------------------------------------------------
# Loss


def freeze_highpass_net(net: HighPassNet) -> HighPassNet:
    """A frozen copy of ``net``: its weights become buffers, so it has no parameters at all.

    The copy cannot be unfrozen by ``requires_grad_(True)`` on a parent module, never appears in an
    optimiser built from ``parameters()``, still moves with ``.to()`` and keeps its ``state_dict``
    keys (so :func:`save_highpass_net` works on it). It is in eval mode. ``net`` is not modified.
    """
    if not isinstance(net, HighPassNet):
        raise TypeError(f"net must be a HighPassNet, got {type(net).__name__}")
    frozen = copy.deepcopy(net)
    for module in frozen.modules():
        for name, parameter in list(module._parameters.items()):
            del module._parameters[name]
            if parameter is not None:
                module.register_buffer(name, parameter.detach().clone())
    return frozen.eval()


def highpass_loss(
    output: torch.Tensor,
    target: torch.Tensor,
    net: HighPassNet,
    weights: tuple[float, float] = (1.0, 1.0),
    criterion: Literal["l1", "mse"] = "l1",
) -> torch.Tensor:
    """HPF loss: ``sum_i weights[i] * criterion(f_i(output), f_i(target))`` over ``net.features``.

    ``f_0`` and ``f_1`` are the feature maps after the first and second activations of the network
    (the paper's L0 and L1 terms); each criterion is a mean over its feature map. The target's features
    are computed without gradient. Gradients flow to ``output``, and also to ``net``'s parameters if
    they require grad: pass a network from :func:`freeze_highpass_net`, or use :class:`HighPassLoss`.

    Args:
        output: restored images in [0, 1].
        target: reference images in [0, 1].
        net: the (trained) network.
        weights: weights of the two feature terms.
        criterion: ``"l1"`` or ``"mse"``.

    Returns:
        The scalar loss; 0 for identical inputs.

    Shape:
        output, target: (N, C, H, W), C = ``net.config.channels`` -> ().
    """
    channels = net.config.channels
    _check_images(output, "output", channels)
    _check_images(target, "target", channels)
    if output.shape != target.shape:
        raise ValueError(
            f"output and target must have the same shape (N, {channels}, H, W), "
            f"got {tuple(output.shape)} and {tuple(target.shape)}"
        )
    if len(weights) != 2:
        raise ValueError(f"weights must be two numbers (one per feature map), got {weights!r}")
    if criterion == "l1":
        distance = F.l1_loss
    elif criterion == "mse":
        distance = F.mse_loss
    else:
        raise ValueError(f"criterion must be 'l1' or 'mse', got {criterion!r}")
    output_features = net.features(output)
    with torch.no_grad():
        target_features = net.features(target)
    terms = [
        weight * distance(output_feature, target_feature)
        for weight, output_feature, target_feature in zip(weights, output_features, target_features)
    ]
    return terms[0] + terms[1]


class HighPassLoss(nn.Module):
    """Module form of :func:`highpass_loss` around a frozen copy of the network.

    The copy (``self.network``, from :func:`freeze_highpass_net`) holds its weights as buffers: the
    loss module has no parameters, so an optimiser built from a parent's ``parameters()`` never
    sees them, and they cannot get gradients. It stays in eval mode even when ``train()`` is called on
    a parent. The buffers are in ``state_dict``; they move with ``.to()``.

    Args:
        net: the trained network (copied, not modified).
        weights: weights of the two feature terms.
        criterion: ``"l1"`` or ``"mse"``.

    Shape:
        output, target: (N, C, H, W), C = ``net.config.channels`` -> ().
    """

    def __init__(
        self,
        net: HighPassNet,
        weights: tuple[float, float] = (1.0, 1.0),
        criterion: Literal["l1", "mse"] = "l1",
    ) -> None:
        super().__init__()
        if len(weights) != 2:
            raise ValueError(f"weights must be two numbers (one per feature map), got {weights!r}")
        if criterion not in ("l1", "mse"):
            raise ValueError(f"criterion must be 'l1' or 'mse', got {criterion!r}")
        self.network = freeze_highpass_net(net)
        self.weights = (float(weights[0]), float(weights[1]))
        self.criterion = criterion

    @classmethod
    def from_file(
        cls,
        path: str | os.PathLike[str],
        weights: tuple[float, float] = (1.0, 1.0),
        criterion: Literal["l1", "mse"] = "l1",
        device: torch.device | str = "cpu",
    ) -> HighPassLoss:
        """The loss around the network saved at ``path`` (see :func:`load_highpass_net`)."""
        return cls(load_highpass_net(path, device=device), weights=weights, criterion=criterion)

    def train(self, mode: bool = True) -> HighPassLoss:
        """Set the mode of this module; the frozen network always stays in eval mode."""
        super().train(mode)
        self.network.eval()
        return self

    def forward(self, output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return highpass_loss(output, target, self.network, weights=self.weights, criterion=self.criterion)

    def extra_repr(self) -> str:
        return f"weights={self.weights}, criterion={self.criterion!r}"
