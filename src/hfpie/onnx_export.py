"""Export an :class:`~hfpie.models.HFPIENet` to ONNX and check it against PyTorch with onnxruntime.

The exported graph has one input ``"image"`` of shape ``(batch, 3, height, width)`` (float32 RGB in
[0, 1]) and one output ``"output"`` of shape ``(batch, 3, height * scale, width * scale)``; batch,
height and width are dynamic axes. **Height and width must be multiples of**
``network.config.multiple_of`` (4 for the three-scale presets), exactly as for the PyTorch module:
pad first (e.g. reflect-pad the bottom and right edges and crop the output, as
:func:`hfpie.tiling.pad_to_multiple` does). The graph does not clamp its output to [0, 1]; do it
after running it, as :func:`hfpie.api.run_network` does.

The legacy TorchScript exporter (``torch.onnx.export(..., dynamo=False)``) is used: unlike the
dynamo exporter it does not need ``onnxscript``, and it handles the network's shape-dependent pooling
exactly. Exporting needs the ``onnx`` package, the check needs ``onnxruntime``: ``pip install
"hfpie[onnx]"`` installs both.

    >>> from hfpie import load_model                                  # doctest: +SKIP
    >>> from hfpie.onnx_export import check_onnx, export_onnx          # doctest: +SKIP
    >>> network = load_model("model.safetensors", device="cpu")       # doctest: +SKIP
    >>> path = export_onnx(network, "model.onnx")                      # doctest: +SKIP
    >>> check_onnx(network, path, sizes=((48, 64), (68, 56)))          # doctest: +SKIP
    1.1920928955078125e-07
"""

from __future__ import annotations

import importlib.util
import os
import warnings
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import torch

from .errors import HfpieError
from .models import HFPIENet

__all__ = ["DEFAULT_OPSET", "OnnxMismatchError", "check_onnx", "default_check_sizes", "export_onnx"]

DEFAULT_OPSET = 17
INPUT_NAME = "image"
OUTPUT_NAME = "output"


class OnnxMismatchError(HfpieError):
    """The exported ONNX graph's output differs from PyTorch's by more than the tolerance."""


def _example_size(network: HFPIENet) -> tuple[int, int]:
    """An example input size large enough that the trace records the general case.

    Local attention pools over a grid of cells and pads that grid by ``min(2, cells - 1)``; the
    tracer freezes that padding, so the example must have at least 3 cells on each side at every
    scale. ``config.alignment`` is a multiple of every scale's cell (in input pixels), so 3 and 4
    alignments do it (different height and width keep the two axes apart in the trace).
    """
    config = network.config
    side = max(config.alignment, config.multiple_of, 4)
    return 3 * side, 4 * side


def default_check_sizes(network: HFPIENet) -> tuple[tuple[int, int], tuple[int, int]]:
    """Two different input sizes to check, multiples of ``multiple_of``.

    The second is not a multiple of ``config.alignment`` when that is larger than ``multiple_of``,
    so the partial attention cells at the image border are exercised too.
    """
    height, width = _example_size(network)
    multiple = network.config.multiple_of
    return (height, width), (width + multiple, height + 2 * multiple)


def export_onnx(network: HFPIENet, path: str | os.PathLike[str], *, opset: int = DEFAULT_OPSET) -> Path:
    """Write ``network`` as an ONNX graph with dynamic batch, height and width.

    Args:
        network: the network to export (float32 parameters; it is traced in eval mode on its own
            device and its training flag is restored afterwards).
        path: the ``.onnx`` file to write (parent folders are created).
        opset: ONNX opset version (17 by default; 13 or newer).

    Returns:
        The path written.

    Raises:
        ImportError: the ``onnx`` package is not installed.

    The graph's input ``"image"`` is ``(batch, in_channels, height, width)`` float32 with height and
    width multiples of ``network.config.multiple_of``; the output ``"output"`` is
    ``(batch, out_channels, height * scale, width * scale)``, not clamped.
    """
    if not isinstance(network, HFPIENet):
        raise TypeError(f"export_onnx needs an HFPIENet, got {type(network).__name__}")
    if importlib.util.find_spec("onnx") is None:
        raise ImportError('exporting to ONNX needs the onnx package: pip install onnx (or pip install "hfpie[onnx]")')
    if opset < 13:
        raise ValueError(f"opset must be 13 or newer (17 is the default), got {opset}")
    parameter = next(network.parameters())
    if parameter.dtype != torch.float32:
        raise ValueError(f"export a float32 network (got {parameter.dtype}); call network.float() first")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    height, width = _example_size(network)
    example = torch.rand(1, network.config.in_channels, height, width, device=parameter.device)
    was_training = network.training
    network.eval()
    try:
        with warnings.catch_warnings(), torch.no_grad():
            # The shape checks in forward() and the grid padding of local attention are frozen by the
            # trace; both are valid for every input size the graph accepts (see _example_size), and
            # the legacy exporter is chosen on purpose (see the module docstring).
            warnings.simplefilter("ignore", torch.jit.TracerWarning)
            warnings.filterwarnings("ignore", message=".*legacy TorchScript-based ONNX export.*")
            warnings.filterwarnings("ignore", category=DeprecationWarning, module=r"torch\.onnx")
            torch.onnx.export(
                network,
                (example,),
                str(path),
                dynamo=False,
                opset_version=opset,
                input_names=[INPUT_NAME],
                output_names=[OUTPUT_NAME],
                dynamic_axes={
                    INPUT_NAME: {0: "batch", 2: "height", 3: "width"},
                    OUTPUT_NAME: {0: "batch", 2: "output_height", 3: "output_width"},
                },
                do_constant_folding=True,
            )
    finally:
        network.train(was_training)
    return path


def _import_onnxruntime():  # noqa: ANN202 - the module
    try:
        import onnxruntime
    except ImportError as error:
        raise ImportError(
            "checking an ONNX export needs onnxruntime: pip install onnxruntime (or pip install \"hfpie[onnx]\")"
        ) from error
    return onnxruntime


def check_onnx(
    network: HFPIENet,
    path: str | os.PathLike[str],
    sizes: Iterable[tuple[int, int]] = ((32, 48),),
    tolerance: float = 1e-3,
    *,
    batch: int = 1,
    seed: int = 0,
) -> float:
    """Run the ONNX graph with onnxruntime (CPU) and PyTorch on random inputs; the max abs difference.

    Args:
        network: the network that was exported.
        path: the ``.onnx`` file.
        sizes: ``(height, width)`` input sizes to try, each a multiple of ``network.config.multiple_of``;
            several sizes show that the dynamic axes really work.
        tolerance: largest accepted absolute difference (images in [0, 1]).
        batch: images per input.
        seed: seed of the random inputs.

    Returns:
        The largest absolute difference over every size.

    Raises:
        ImportError: onnxruntime is not installed.
        OnnxMismatchError: a difference above ``tolerance`` (or a wrong output shape).
    """
    onnxruntime = _import_onnxruntime()
    config = network.config
    sizes = [tuple(int(v) for v in size) for size in sizes]
    if not sizes:
        raise ValueError("give at least one (height, width) size to check")
    for height, width in sizes:
        if height <= 0 or width <= 0 or height % config.multiple_of or width % config.multiple_of:
            raise ValueError(
                f"check sizes must be positive multiples of {config.multiple_of}, got {height}x{width}"
            )
    options = onnxruntime.SessionOptions()
    options.log_severity_level = 3
    session = onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    generator = torch.Generator().manual_seed(seed)
    device = next(network.parameters()).device
    was_training = network.training
    network.eval()
    worst = 0.0
    try:
        for height, width in sizes:
            x = torch.rand(batch, config.in_channels, height, width, generator=generator)
            with torch.no_grad():
                expected = network(x.to(device)).float().cpu().numpy()
            (actual,) = session.run([OUTPUT_NAME], {INPUT_NAME: x.numpy()})
            if actual.shape != expected.shape:
                raise OnnxMismatchError(
                    f"{path}: output shape {actual.shape} for input {height}x{width}, PyTorch gives "
                    f"{expected.shape}; re-export the model with this hfpie version"
                )
            difference = float(np.max(np.abs(actual.astype(np.float64) - expected.astype(np.float64))))
            if not difference <= tolerance:  # also catches NaN
                raise OnnxMismatchError(
                    f"{path}: onnxruntime differs from PyTorch by {difference:.3g} (tolerance {tolerance:g}) on a "
                    f"{height}x{width} input; try another opset or report it"
                )
            worst = max(worst, difference)
    finally:
        network.train(was_training)
    return worst
