"""Adversarial training: a spectral-norm patch discriminator, GAN losses and one training step.

* :class:`DiscriminatorConfig`, :class:`PatchDiscriminator` - VGG-style discriminator that returns a
  map of logits, one per patch.
* :func:`gan_loss` / :class:`AdversarialLoss` - standard (non-saturating) and relativistic average
  (RaGAN, as in ESRGAN) losses on logits.
* :func:`gan_training_step` - one generator step and one discriminator step, BasicSR style.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.parametrizations import spectral_norm

__all__ = [
    "AdversarialLoss",
    "DiscriminatorConfig",
    "GANKind",
    "PatchDiscriminator",
    "gan_loss",
    "gan_training_step",
]

GANKind = Literal["relativistic", "standard"]
_KINDS = ("relativistic", "standard")


@dataclass(frozen=True)
class DiscriminatorConfig:
    """Architecture of a :class:`PatchDiscriminator`.

    Attributes:
        in_channels: image channels.
        num_features: channels of the first convolution; doubled at every downsampling stage.
        num_layers: number of stride-2 downsampling stages; the logit map is ``2 ** num_layers`` times
            smaller than the image.
        max_features: cap on the channels of any stage.
        negative_slope: slope of the LeakyReLU activations.
    """

    in_channels: int = 3
    num_features: int = 64
    num_layers: int = 3
    max_features: int = 512
    negative_slope: float = 0.2

    def __post_init__(self) -> None:
        for name in ("in_channels", "num_features", "num_layers", "max_features"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        if self.negative_slope < 0:
            raise ValueError(f"negative_slope must be non-negative, got {self.negative_slope}")


class PatchDiscriminator(nn.Module):
    """VGG-style patch discriminator with spectral normalisation on every convolution.

    A 3 x 3 convolution to ``num_features`` channels, then ``num_layers`` stages of a 4 x 4 stride-2
    convolution (doubling the channels up to ``max_features``) and a 3 x 3 convolution, each followed
    by LeakyReLU, and a final 3 x 3 convolution to one channel of logits. No normalisation layers, so
    the output of a sample does not depend on the rest of the batch.

    Args:
        config: the architecture; the default config if None.

    Shape:
        images: (N, C, H, W) -> (N, 1, H // 2**num_layers, W // 2**num_layers), with H and W at least
        ``2 ** num_layers``.
    """

    def __init__(self, config: DiscriminatorConfig | None = None) -> None:
        super().__init__()
        self.config = config if config is not None else DiscriminatorConfig()
        slope = self.config.negative_slope
        width = min(self.config.num_features, self.config.max_features)
        layers: list[nn.Module] = [
            spectral_norm(nn.Conv2d(self.config.in_channels, width, 3, padding=1)),
            nn.LeakyReLU(slope),
        ]
        for _ in range(self.config.num_layers):
            next_width = min(width * 2, self.config.max_features)
            layers += [
                spectral_norm(nn.Conv2d(width, next_width, 4, stride=2, padding=1)),
                nn.LeakyReLU(slope),
                spectral_norm(nn.Conv2d(next_width, next_width, 3, padding=1)),
                nn.LeakyReLU(slope),
            ]
            width = next_width
        layers.append(spectral_norm(nn.Conv2d(width, 1, 3, padding=1)))
        self.body = nn.Sequential(*layers)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        channels, minimum = self.config.in_channels, 2**self.config.num_layers
        if not isinstance(images, torch.Tensor) or images.ndim != 4 or images.shape[1] != channels:
            shape = tuple(images.shape) if isinstance(images, torch.Tensor) else type(images).__name__
            raise ValueError(f"images must have shape (N, {channels}, H, W), got {shape}")
        if images.shape[2] < minimum or images.shape[3] < minimum:
            raise ValueError(
                f"images must be at least {minimum} x {minimum} for {self.config.num_layers} "
                f"downsampling stages, got shape {tuple(images.shape)}"
            )
        return self.body(images)


def gan_loss(
    real_logits: torch.Tensor | None,
    fake_logits: torch.Tensor,
    kind: GANKind = "relativistic",
    for_generator: bool = False,
) -> torch.Tensor:
    """Adversarial loss on discriminator logits (binary cross-entropy on logits throughout).

    ``"standard"``: the discriminator minimises ``BCE(real, 1) + BCE(fake, 0)``; the generator the
    non-saturating ``BCE(fake, 1)`` (``real_logits`` is ignored and may be None).

    ``"relativistic"`` (relativistic average GAN, as in ESRGAN): with
    ``D_Ra(x_r, x_f) = sigmoid(C(x_r) - mean C(x_f))`` and ``D_Ra(x_f, x_r) = sigmoid(C(x_f) - mean C(x_r))``
    (means over the whole batch and every patch), the discriminator minimises
    ``(BCE(C_r - mean C_f, 1) + BCE(C_f - mean C_r, 0)) / 2`` and the generator the same with the labels
    swapped. The generator uses the real logits too: pass them detached.

    Args:
        real_logits: discriminator logits of real (clean) images.
        fake_logits: discriminator logits of generated images.
        kind: ``"relativistic"`` or ``"standard"``.
        for_generator: the generator's loss if True, the discriminator's if False.

    Returns:
        The scalar loss (lower when the discriminator, or the generator, is winning).

    Shape:
        real_logits, fake_logits: any shape, e.g. (N, 1, h, w) -> ().
    """
    if kind not in _KINDS:
        raise ValueError(f"kind must be one of {_KINDS}, got {kind!r}")
    if not isinstance(fake_logits, torch.Tensor):
        raise TypeError(f"fake_logits must be a tensor of logits, got {type(fake_logits).__name__}")
    if kind == "standard" and for_generator:
        return F.binary_cross_entropy_with_logits(fake_logits, torch.ones_like(fake_logits))
    if not isinstance(real_logits, torch.Tensor):
        raise TypeError(f"real_logits must be a tensor of logits for this loss, got {type(real_logits).__name__}")
    if kind == "standard":
        real_term = F.binary_cross_entropy_with_logits(real_logits, torch.ones_like(real_logits))
        fake_term = F.binary_cross_entropy_with_logits(fake_logits, torch.zeros_like(fake_logits))
        return real_term + fake_term
    real_relative = real_logits - fake_logits.mean()
    fake_relative = fake_logits - real_logits.mean()
    real_label, fake_label = (0.0, 1.0) if for_generator else (1.0, 0.0)
    real_term = F.binary_cross_entropy_with_logits(real_relative, torch.full_like(real_relative, real_label))
    fake_term = F.binary_cross_entropy_with_logits(fake_relative, torch.full_like(fake_relative, fake_label))
    return 0.5 * (real_term + fake_term)


class AdversarialLoss(nn.Module):
    """Module form of :func:`gan_loss`.

    Args:
        kind: ``"relativistic"`` or ``"standard"``.

    Shape:
        real_logits, fake_logits: any shape -> ().
    """

    def __init__(self, kind: GANKind = "relativistic") -> None:
        super().__init__()
        if kind not in _KINDS:
            raise ValueError(f"kind must be one of {_KINDS}, got {kind!r}")
        self.kind = kind

    def forward(
        self, real_logits: torch.Tensor | None, fake_logits: torch.Tensor, for_generator: bool = False
    ) -> torch.Tensor:
        return gan_loss(real_logits, fake_logits, kind=self.kind, for_generator=for_generator)

    def extra_repr(self) -> str:
        return f"kind={self.kind!r}"


def gan_training_step(
    generator: nn.Module,
    discriminator: nn.Module,
    generator_optimizer: torch.optim.Optimizer,
    discriminator_optimizer: torch.optim.Optimizer,
    degraded: torch.Tensor,
    clean: torch.Tensor,
    generator_loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    adversarial_weight: float = 5e-3,
    kind: GANKind = "relativistic",
) -> dict[str, float]:
    """One adversarial step: a generator step, then a discriminator step (the BasicSR pattern).

    1. The discriminator's parameters are frozen (``requires_grad=False``) and the generator minimises
       ``generator_loss_fn(output, clean) + adversarial_weight * gan_loss(..., for_generator=True)``.
       For the relativistic loss the real logits are computed and detached.
    2. The discriminator's ``requires_grad`` flags are restored (also if step 1 raises) and it
       minimises ``gan_loss(D(clean), D(output.detach()))``, so no gradient reaches the generator.

    The relativistic discriminator loss is back-propagated in one pass with its cross terms (BasicSR
    splits it in two passes that detach them to save memory). Train/eval modes are left as they are:
    put both networks in train mode first.

    Args:
        generator: maps ``degraded`` to an image the shape of ``clean``.
        discriminator: maps images to logits, e.g. a :class:`PatchDiscriminator`.
        generator_optimizer: optimiser over the generator's parameters.
        discriminator_optimizer: optimiser over the discriminator's parameters.
        degraded: generator input.
        clean: the matching clean images.
        generator_loss_fn: content loss ``(output, clean) -> scalar``, e.g. L1 plus the HPF loss.
        adversarial_weight: weight of the adversarial term of the generator loss (ESRGAN's 5e-3).
        kind: ``"relativistic"`` or ``"standard"``, see :func:`gan_loss`.

    Returns:
        ``generator_content``, ``generator_adversarial``, ``generator_total``, ``discriminator`` (the
        losses) and ``real_logit_mean``, ``fake_logit_mean`` (from the discriminator step), as floats.

    Shape:
        degraded: (N, C, h, w); clean: (N, C, H, W) (h, w = H, W except for super-resolution).
    """
    if kind not in _KINDS:
        raise ValueError(f"kind must be one of {_KINDS}, got {kind!r}")
    if adversarial_weight < 0:
        raise ValueError(f"adversarial_weight must be non-negative, got {adversarial_weight}")
    for name, images in (("degraded", degraded), ("clean", clean)):
        if not isinstance(images, torch.Tensor) or images.ndim != 4:
            shape = tuple(images.shape) if isinstance(images, torch.Tensor) else type(images).__name__
            raise ValueError(f"{name} must have shape (N, C, H, W), got {shape}")
    if degraded.shape[0] != clean.shape[0]:
        raise ValueError(
            f"degraded and clean must have the same batch size, got {degraded.shape[0]} and {clean.shape[0]}"
        )

    discriminator_parameters = list(discriminator.parameters())
    saved_flags = [parameter.requires_grad for parameter in discriminator_parameters]

    # Generator step, discriminator frozen.
    for parameter in discriminator_parameters:
        parameter.requires_grad_(False)
    try:
        generator_optimizer.zero_grad(set_to_none=True)
        output = generator(degraded)
        if output.shape != clean.shape:
            raise ValueError(
                f"the generator output has shape {tuple(output.shape)}, but clean has {tuple(clean.shape)}"
            )
        content_loss = generator_loss_fn(output, clean)
        if not isinstance(content_loss, torch.Tensor) or content_loss.ndim != 0:
            raise ValueError("generator_loss_fn must return a scalar tensor (shape ())")
        fake_logits = discriminator(output)
        real_logits = discriminator(clean).detach() if kind == "relativistic" else None
        adversarial_loss = gan_loss(real_logits, fake_logits, kind=kind, for_generator=True)
        generator_total = content_loss + adversarial_weight * adversarial_loss
        generator_total.backward()
        generator_optimizer.step()
    finally:
        for parameter, flag in zip(discriminator_parameters, saved_flags):
            parameter.requires_grad_(flag)

    # Discriminator step on real and detached fake images.
    discriminator_optimizer.zero_grad(set_to_none=True)
    real_logits = discriminator(clean)
    fake_logits = discriminator(output.detach())
    discriminator_loss = gan_loss(real_logits, fake_logits, kind=kind, for_generator=False)
    discriminator_loss.backward()
    discriminator_optimizer.step()

    return {
        "generator_content": float(content_loss.detach()),
        "generator_adversarial": float(adversarial_loss.detach()),
        "generator_total": float(generator_total.detach()),
        "discriminator": float(discriminator_loss.detach()),
        "real_logit_mean": float(real_logits.detach().mean()),
        "fake_logit_mean": float(fake_logits.detach().mean()),
    }
