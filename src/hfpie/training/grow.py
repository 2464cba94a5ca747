"""Grow a trained network into a deeper one that starts with exactly the same outputs.

A body at scale ``level`` is ``RCAB_0 ... RCAB_{n-1}, conv``. Growing ``n`` to ``m > n`` keeps the ``n``
trained blocks and the closing conv and inserts ``m - n`` new blocks before the conv. A new block's
second convolution starts at zero, so the block computes ``x + CA(0) * 0 = x``: the grown network is
the trained one, and training then puts the new capacity to use. Only ``num_blocks`` may grow; every
other field (width, attention, scale) must match.

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


def grow_state(state: dict[str, torch.Tensor], source: HFPIEConfig, target: HFPIEConfig, *,
               seed: int = 0) -> dict[str, torch.Tensor]:
    """The state dict of ``target`` (a deeper ``source``) whose network computes what ``state`` does.

    New blocks' first convolutions and attentions get the network's usual random initialisation
    (from ``seed``); their second convolutions are zero.
    """
    if dataclasses.replace(source, num_blocks=target.num_blocks) != target:
        changed = [f.name for f in dataclasses.fields(source)
                   if f.name != "num_blocks" and getattr(source, f.name) != getattr(target, f.name)]
        raise ValueError(f"only num_blocks can grow; these fields differ too: {changed}")
    if any(t < s for s, t in zip(source.num_blocks, target.num_blocks)):
        raise ValueError(f"cannot shrink num_blocks {source.num_blocks} to {target.num_blocks}")
    generator_state = torch.random.get_rng_state()
    torch.manual_seed(seed)
    try:
        grown = HFPIENet(target).state_dict()
    finally:
        torch.random.set_rng_state(generator_state)

    for name, value in state.items():
        match = _BODY.match(name)
        new_name = name
        if match:
            level, index, rest = int(match[1]), int(match[2]), match[3]
            if index == source.num_blocks[level]:  # the body's closing conv moves to the end
                new_name = f"scales.{level}.body.{target.num_blocks[level]}.{rest}"
        if new_name not in grown or grown[new_name].shape != value.shape:
            raise ValueError(f"{name}: not a tensor of a {source} network")
        grown[new_name] = value.detach().clone()

    for level, (old, new) in enumerate(zip(source.num_blocks, target.num_blocks)):
        for index in range(old, new):
            for part in ("weight", "bias"):
                grown[f"scales.{level}.body.{index}.conv2.{part}"].zero_()
    return grown
