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

Another SR tail: the progressive tail (conv, pixel shuffle, conv, pixel shuffle, conv, with no
activation between) is one affine map of the features at the input size, so a ``"direct"`` tail whose
kernel covers its receptive field (``sr_tail_kernel = 5`` for x2 and x4) gets exactly that map, found by
probing the trained tail with impulses (``compose_tail``); the two differ only within a pixel or two of
the border, where the progressive tail's intermediate maps are zero-padded. A direct tail too small
for that, or a progressive tail from a direct one, starts at zero (the first output is then the
bilinear upsampling of the input). A direct tail's kernel grows exactly (the old one at the centre).

In all cases but the zero tail the grown network is the trained one, and training then puts the new
capacity to use. Only ``num_blocks``, ``num_features`` and the SR tail may change; every other field
(attention, scale, ...) must match.

    grown = grow_state(state, source_config, target_config)
    network.load_state_dict(grown)
"""

from __future__ import annotations

import dataclasses
import re

import torch
import torch.nn.functional as F

from ..models import HFPIEConfig, HFPIENet

__all__ = ["compose_tail", "grow_state"]

_BODY = re.compile(r"^scales\.(\d+)\.body\.(\d+)\.(.+)$")


_SR_TAIL = "scales.0.tail."


def compose_tail(state: dict[str, torch.Tensor], config: HFPIEConfig) -> tuple[torch.Tensor, torch.Tensor, int]:
    """The one convolution (to ``out_channels * scale**2`` channels at the input size, before one pixel
    shuffle) that the progressive SR tail of ``state`` computes: its weight (a 17x17 kernel, float64),
    its bias, and its reach (the kernel is zero further than ``reach`` pixels from its centre; 2 for
    the x2 and x4 tails).

    Probing: the tail applied to zero features gives the bias; applied to an impulse in each input
    channel, minus that, gives the kernel, read backwards (a convolution is a correlation).
    """
    if config.sr_tail != "progressive" or config.scale == 1:
        raise ValueError("only a progressive SR tail is composed into a direct one")
    network = HFPIENet(config)
    tail = network.scales[0].tail
    tail.load_state_dict({name[len(_SR_TAIL):]: value for name, value in state.items() if name.startswith(_SR_TAIL)})
    tail = tail.to(torch.float64)
    features, scale, size = config.num_features, config.scale, 17  # wider than any x2/x3/x4/x8 tail reaches
    centre = size // 2
    probes = torch.zeros(features + 1, features, size, size, dtype=torch.float64)
    probes[torch.arange(features), torch.arange(features), centre, centre] = 1.0  # the last probe is zero
    with torch.no_grad():
        output = tail(probes)  # (features + 1, out, size * scale, size * scale)
    out = output.shape[1]
    # back to (probe, out * scale**2, size, size): channel c * scale**2 + a * scale + b at (i, j) is
    # output pixel (i * scale + a, j * scale + b) of channel c, as nn.PixelShuffle reads it
    cells = output.reshape(features + 1, out, size, scale, size, scale).permute(0, 1, 3, 5, 2, 4)
    cells = cells.reshape(features + 1, out * scale**2, size, size)
    bias = cells[-1, :, centre, centre]
    response = cells[:-1] - cells[-1:]  # (in, out * scale**2, size, size)
    # y[o, i, j] = sum_k,u,v W[o, k, u, v] x[k, i + u - r, j + v - r]: the impulse at the centre answers
    # at i = centre + r - u, so W[o, k, u, v] = response[k, o, centre + r - u, centre + r - v]
    weight = response.permute(1, 0, 2, 3).flip(-2, -1)  # W over the whole probe, kernel size `size`
    magnitude = weight.abs().amax(dim=(0, 1))
    used = magnitude > 1e-9 * magnitude.max()  # float64 rounding where the padded borders meet
    rows, cols = used.any(dim=1).nonzero(), used.any(dim=0).nonzero()
    reach = int(max(centre - rows.min(), rows.max() - centre, centre - cols.min(), cols.max() - centre))
    return weight, bias, reach


def _direct_tail(state: dict[str, torch.Tensor], source: HFPIEConfig, target: HFPIEConfig
                 ) -> tuple[torch.Tensor, torch.Tensor] | None:
    """The trained tail of ``state`` as ``target``'s direct tail (weight, bias), or None (start at zero)."""
    kernel = target.sr_tail_kernel
    if source.sr_tail == "direct":  # a larger kernel: the trained one at its centre
        weight, bias = state[_SR_TAIL + "0.weight"], state[_SR_TAIL + "0.bias"]
        pad = (kernel - weight.shape[-1]) // 2
        if pad < 0:
            raise ValueError(f"cannot shrink sr_tail_kernel {source.sr_tail_kernel} to {kernel}")
        return F.pad(weight, (pad, pad, pad, pad)), bias
    weight, bias, reach = compose_tail(state, source)
    if reach > kernel // 2:
        return None
    centre = weight.shape[-1] // 2
    half = kernel // 2
    return weight[..., centre - half: centre + half + 1, centre - half: centre + half + 1], bias


def grow_state(state: dict[str, torch.Tensor], source: HFPIEConfig, target: HFPIEConfig, *,
               seed: int = 0) -> dict[str, torch.Tensor]:
    """The state dict of ``target`` (a deeper and/or wider ``source``) whose network computes what
    ``state`` does.

    New blocks' first convolutions and attentions get the network's usual random initialisation
    (from ``seed``); their second convolutions are zero. New channels get random weights of their
    own and zero weights into the old channels. A progressive SR tail becomes a direct one whose kernel
    covers it (exact away from the border), a direct tail's kernel grows with the old one at its centre,
    and any other change of SR tail starts the new one at zero, so that network's first output is the
    bilinear upsampling of the input.
    """
    grown_fields = {"num_blocks", "num_features", "sr_tail", "sr_tail_kernel"}
    if dataclasses.replace(source, num_blocks=target.num_blocks, num_features=target.num_features,
                           sr_tail=target.sr_tail, sr_tail_kernel=target.sr_tail_kernel) != target:
        changed = [f.name for f in dataclasses.fields(source)
                   if f.name not in grown_fields and getattr(source, f.name) != getattr(target, f.name)]
        raise ValueError(f"only num_blocks, num_features and the SR tail can change; these fields differ too: {changed}")
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

    new_tail = target.scale > 1 and (source.sr_tail != target.sr_tail or (
        target.sr_tail == "direct" and source.sr_tail_kernel != target.sr_tail_kernel))  # another SR tail
    direct = _direct_tail(state, source, target) if new_tail and target.sr_tail == "direct" else None
    if direct is not None:  # the trained tail as one convolution: copied below like any other tensor
        state = {**{name: value for name, value in state.items() if not name.startswith(_SR_TAIL)},
                 _SR_TAIL + "0.weight": direct[0], _SR_TAIL + "0.bias": direct[1]}
        new_tail = False
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
