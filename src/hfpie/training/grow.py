"""Grow a trained network deeper or wider into one that starts with exactly the same outputs.

Deeper: a body at scale ``level`` is ``RCAB_0 ... RCAB_{n-1}, conv``. Growing ``n`` to ``m > n`` keeps
the ``n`` trained blocks and the closing conv and inserts ``m - n`` new blocks before the conv. A new
block's second convolution starts at zero, so the block computes ``x + CA(0) * 0 = x``.

Wider: growing ``num_features`` from ``C`` to ``D > C`` appends ``D - C`` channels to every feature
map. Every layer of the network is either per channel (attention weights, feature attention, whose
kernel runs along the axis of the merged maps, residual sums) or a convolution, and a pixel shuffle
keeps the first ``C * s**2`` channels of its input for the first ``C`` of its output. So each trained
convolution becomes the top-left block of the wider one, the weights from new input channels to old
output channels start at zero, and everything else (the new channels' own weights) gets the usual
random initialisation: the new channels compute features from the start, but reach the old ones (and
the image) only once training moves those zero weights. (New channels at zero activations instead
would never get a gradient.)

In both cases the grown network is the trained one, and training then puts the new capacity to use.
Only ``num_blocks`` and ``num_features`` may grow; every other field (attention, scale, ...) must match.

    grown = grow_state(state, source_config, target_config)
    network.load_state_dict(grown)
"""

from __future__ import annotations

import dataclasses
import re

import torch

from ..models import HFPIEConfig, HFPIENet

__all__ = ["grow_state"]

_BODY = re.compile(r"^scales\.(\d+)\.body\.(\d+)\.(.+)$")


_SR_TAIL = "scales.0.tail."


def grow_state(state: dict[str, torch.Tensor], source: HFPIEConfig, target: HFPIEConfig, *,
               seed: int = 0) -> dict[str, torch.Tensor]:
    """The state dict of ``target`` (a deeper and/or wider ``source``) whose network computes what
    ``state`` does.

    New blocks' first convolutions and attentions get the network's usual random initialisation
    (from ``seed``); their second convolutions are zero. New channels get random weights of their
    own and zero weights into the old channels. Another ``sr_tail`` is not copied: it starts at zero,
    so that network's first output is the bilinear upsampling of the input.
    """
    grown_fields = {"num_blocks", "num_features", "sr_tail"}
    if dataclasses.replace(source, num_blocks=target.num_blocks, num_features=target.num_features,
                           sr_tail=target.sr_tail) != target:
        changed = [f.name for f in dataclasses.fields(source)
                   if f.name not in grown_fields and getattr(source, f.name) != getattr(target, f.name)]
        raise ValueError(f"only num_blocks and num_features can grow; these fields differ too: {changed}")
    if len(source.num_blocks) != len(target.num_blocks) or any(
            t < s for s, t in zip(source.num_blocks, target.num_blocks)):
        raise ValueError(f"cannot shrink num_blocks {source.num_blocks} to {target.num_blocks}")
    if target.num_features < source.num_features:
        raise ValueError(f"cannot shrink num_features {source.num_features} to {target.num_features}")
    generator_state = torch.random.get_rng_state()
    torch.manual_seed(seed)
    try:
        grown = HFPIENet(target).state_dict()
    finally:
        torch.random.set_rng_state(generator_state)

    new_tail = source.sr_tail != target.sr_tail and target.scale > 1  # another SR tail: it starts at zero
    for name, value in state.items():
        if new_tail and name.startswith(_SR_TAIL):
            continue
        match = _BODY.match(name)
        new_name = name
        if match:
            level, index, rest = int(match[1]), int(match[2]), match[3]
            if index == source.num_blocks[level]:  # the body's closing conv moves to the end
                new_name = f"scales.{level}.body.{target.num_blocks[level]}.{rest}"
        into = grown.get(new_name)
        if into is None or into.ndim != value.ndim or any(t < s for t, s in zip(into.shape, value.shape)):
            raise ValueError(f"{name}: not a tensor of a {source} network")
        into[tuple(slice(0, n) for n in value.shape)] = value.detach()  # the trained block, top left
        if value.ndim > 1:  # a convolution: old outputs ignore the new input channels
            into[: value.shape[0], value.shape[1]:] = 0

    for level, (old, new) in enumerate(zip(source.num_blocks, target.num_blocks)):
        for index in range(old, new):
            for part in ("weight", "bias"):
                grown[f"scales.{level}.body.{index}.conv2.{part}"].zero_()
    if new_tail:  # the output starts as the bilinear upsampling of the input
        for name, value in grown.items():
            if name.startswith(_SR_TAIL):
                value.zero_()
    return grown
