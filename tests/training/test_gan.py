"""Tests of hfpie.training.gan: the patch discriminator, the GAN losses and one training step."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from hfpie.training.gan import (
    AdversarialLoss,
    DiscriminatorConfig,
    PatchDiscriminator,
    gan_loss,
    gan_training_step,
)

TINY = DiscriminatorConfig(num_features=8, num_layers=2)



def make_setup(seed: int = 0):
    torch.manual_seed(seed)
    generator = torch.nn.Conv2d(3, 3, 3, padding=1)
    discriminator = PatchDiscriminator(TINY)
    generator_optimizer = torch.optim.Adam(generator.parameters(), lr=1e-2)
    discriminator_optimizer = torch.optim.Adam(discriminator.parameters(), lr=1e-2)
    clean = torch.rand(2, 3, 16, 16)
    degraded = (clean + 0.1 * torch.randn_like(clean)).clamp(0, 1)
    return generator, discriminator, generator_optimizer, discriminator_optimizer, degraded, clean


def test_discriminator_output_is_a_patch_map():
    discriminator = PatchDiscriminator(DiscriminatorConfig(num_features=8, num_layers=3))
    assert discriminator(torch.rand(2, 3, 64, 48)).shape == (2, 1, 8, 6)
    assert PatchDiscriminator(TINY)(torch.rand(1, 3, 16, 16)).shape == (1, 1, 4, 4)
    assert any("parametrizations" in name for name, _ in discriminator.named_parameters())  # spectral norm
    with pytest.raises(ValueError, match="at least 8 x 8"):
        discriminator(torch.rand(1, 3, 4, 64))
    with pytest.raises(ValueError, match=r"\(N, 3, H, W\)"):
        discriminator(torch.rand(1, 1, 64, 64))


@pytest.mark.parametrize("kind", ["standard", "relativistic"])
def test_discriminator_loss_is_lower_when_it_separates_real_from_fake(kind):
    high, low = torch.full((2, 1, 4, 4), 5.0), torch.full((2, 1, 4, 4), -5.0)
    winning = gan_loss(high, low, kind=kind, for_generator=False)
    losing = gan_loss(low, high, kind=kind, for_generator=False)
    assert winning < 0.05 < 1.0 < losing
    # The generator wins when the fake logits are high.
    generator_winning = gan_loss(low, high, kind=kind, for_generator=True)
    generator_losing = gan_loss(high, low, kind=kind, for_generator=True)
    assert generator_winning < generator_losing


def test_relativistic_loss_matches_the_esrgan_formula():
    generator = torch.Generator().manual_seed(0)
    real, fake = torch.randn(2, 1, 4, 4, generator=generator), torch.randn(2, 1, 4, 4, generator=generator)
    bce = F.binary_cross_entropy_with_logits
    expected = 0.5 * (
        bce(real - fake.mean(), torch.ones_like(real)) + bce(fake - real.mean(), torch.zeros_like(fake))
    )
    assert torch.allclose(gan_loss(real, fake, kind="relativistic"), expected)
    assert torch.allclose(AdversarialLoss("relativistic")(real, fake), expected)
    standard_generator = gan_loss(None, fake, kind="standard", for_generator=True)
    assert torch.allclose(standard_generator, bce(fake, torch.ones_like(fake)))
    with pytest.raises(TypeError, match="real_logits"):
        gan_loss(None, fake, kind="relativistic", for_generator=True)
    with pytest.raises(ValueError, match="kind"):
        gan_loss(real, fake, kind="wasserstein")


@pytest.mark.parametrize("kind", ["standard", "relativistic"])
def test_training_step_updates_both_networks_and_freezes_the_discriminator_only_for_the_generator(kind):
    generator, discriminator, generator_optimizer, discriminator_optimizer, degraded, clean = make_setup()
    generator_before = [parameter.detach().clone() for parameter in generator.parameters()]
    discriminator_before = [parameter.detach().clone() for parameter in discriminator.parameters()]
    flags_during_generator_step: list[bool] = []

    def content_loss(output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        flags_during_generator_step.extend(parameter.requires_grad for parameter in discriminator.parameters())
        return F.l1_loss(output, target)

    losses = gan_training_step(
        generator,
        discriminator,
        generator_optimizer,
        discriminator_optimizer,
        degraded,
        clean,
        content_loss,
        adversarial_weight=0.1,
        kind=kind,
    )
    assert flags_during_generator_step and not any(flags_during_generator_step)
    assert all(parameter.requires_grad for parameter in discriminator.parameters())
    assert any(not torch.equal(p, q) for p, q in zip(generator.parameters(), generator_before))
    assert any(not torch.equal(p, q) for p, q in zip(discriminator.parameters(), discriminator_before))
    assert set(losses) == {
        "generator_content",
        "generator_adversarial",
        "generator_total",
        "discriminator",
        "real_logit_mean",
        "fake_logit_mean",
    }
    assert all(isinstance(value, float) for value in losses.values())
    expected_total = losses["generator_content"] + 0.1 * losses["generator_adversarial"]
    assert abs(losses["generator_total"] - expected_total) < 1e-5


def test_training_step_unfreezes_the_discriminator_when_the_generator_loss_fails():
    generator, discriminator, generator_optimizer, discriminator_optimizer, degraded, clean = make_setup()

    def failing_loss(output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        gan_training_step(
            generator, discriminator, generator_optimizer, discriminator_optimizer, degraded, clean, failing_loss
        )
    assert all(parameter.requires_grad for parameter in discriminator.parameters())


def test_discriminator_step_sends_no_gradient_to_the_generator():
    generator, discriminator, generator_optimizer, discriminator_optimizer, degraded, clean = make_setup()
    frozen_generator_optimizer = torch.optim.SGD(generator.parameters(), lr=0.0)
    gan_training_step(
        generator,
        discriminator,
        frozen_generator_optimizer,
        discriminator_optimizer,
        degraded,
        clean,
        lambda output, target: F.l1_loss(output, target),
        adversarial_weight=0.0,
        kind="relativistic",
    )
    # With a zero adversarial weight the generator's gradient is the L1 gradient alone.
    reference = torch.nn.Conv2d(3, 3, 3, padding=1)
    reference.load_state_dict(generator.state_dict())
    F.l1_loss(reference(degraded), clean).backward()
    for parameter, expected in zip(generator.parameters(), reference.parameters()):
        assert torch.allclose(parameter.grad, expected.grad, atol=1e-6)
