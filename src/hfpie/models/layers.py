"""Building blocks of the HFPIE network.

* :func:`local_average` - the pooling used by every attention layer (see below).
* :class:`ChannelAttention` and :class:`RCAB` - the Residual Channel Attention Block of RCAN.
* :class:`FeatureAttention` - the paper's feature attention module.
* :class:`EdgeFilterBank` - the paper's multi-scale edge filtering (fixed-initialised, trainable).
* :class:`Downsample` / :class:`Upsample` - strided convolution down, pixel shuffle up.

Pooling. RCAN and the paper pool each feature map globally. A global statistic makes the output of a
tile depend on the tile, so tiled and whole-image inference disagree. Every attention layer here pools
locally instead, in training and inference alike: the map is averaged over cells of ``window // 4``
pixels, the cell averages are smoothed over 5 x 5 cells (border windows clipped to the image), the
attention weights are computed on that grid and interpolated bilinearly back to every pixel. On a
training patch about the size of the window this is close to the global average; on any image it is
translation-equivariant for shifts by whole cells, so tiled inference with aligned tiles and a halo of
the network's receptive radius is exact. It is also cheap: the pooling runs on the coarse grid.
``window=None`` restores the paper's global pooling.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

__all__ = [
    "RCAB",
    "ChannelAttention",
    "Downsample",
    "EdgeFilterBank",
    "FeatureAttention",
    "Upsample",
    "attention_cell",
    "edge_filters",
    "expand_to_pixels",
    "local_average",
]


def attention_cell(window: int | None) -> int | None:
    """Side, in pixels, of the grid cells that local attention pools over (None: global pooling)."""
    return None if window is None else max(window // 4, 1)


def local_average(x: torch.Tensor, window: int | None) -> torch.Tensor:
    """Local averages of each channel on a grid of cells of ``attention_cell(window)`` pixels.

    Each cell holds the mean of the pixels of the 5 x 5 cells around it (clipped to the image); the
    last row and column of cells may be partial. Expand back to pixels with :func:`expand_to_pixels`.

    Shape:
        x: (N, C, H, W) -> (N, C, ceil(H / cell), ceil(W / cell)), or (N, C, 1, 1) if ``window`` is None.
    """
    cell = attention_cell(window)
    if cell is None:
        return x.mean(dim=(2, 3), keepdim=True)
    if cell > 1:
        x = F.avg_pool2d(x, cell, stride=cell, ceil_mode=True)
    height, width = x.shape[-2:]
    pad_h, pad_w = min(2, height - 1), min(2, width - 1)
    return F.avg_pool2d(
        x, (2 * pad_h + 1, 2 * pad_w + 1), stride=1, padding=(pad_h, pad_w), count_include_pad=False
    )


def multiply_add(base: torch.Tensor, x: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """``base + x * weights`` in one fused pass (``addcmul``: one rounding, no full-size temporary)."""
    return torch.addcmul(base, x, weights)


def _like_layout(values: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
    """``values`` in the memory layout of ``reference`` (channels-last or not), so that elementwise
    operations between full-resolution maps run on matching strides: mixed layouts run several times
    slower (docs/speed.md, "What was off the fast path"), in float32 as in bfloat16."""
    if reference.dim() == 4 and reference.is_contiguous(memory_format=torch.channels_last) and not reference.is_contiguous():
        return values.contiguous(memory_format=torch.channels_last)
    return values.contiguous()


def expand_to_pixels(values: torch.Tensor, window: int | None, size: tuple[int, int]) -> torch.Tensor:
    """Bilinear interpolation of per-cell values (from :func:`local_average`) back to ``size`` pixels.

    With global pooling the (N, C, 1, 1) values are returned as they are (they broadcast).
    """
    cell = attention_cell(window)
    if cell is None or cell == 1:
        return values
    expanded = F.interpolate(values, scale_factor=cell, mode="bilinear", align_corners=False)
    return expanded[..., : size[0], : size[1]]


class ChannelAttention(nn.Module):
    """RCAN channel attention: pool, 1x1 squeeze, ReLU, 1x1 excite, sigmoid, rescale."""

    def __init__(self, num_features: int, *, reduction: int, window: int | None) -> None:
        super().__init__()
        hidden = max(num_features // reduction, 4)
        self.window = window
        self.squeeze = nn.Conv2d(num_features, hidden, 1)
        self.excite = nn.Conv2d(hidden, num_features, 1)

    def pixel_weights(self, x: torch.Tensor) -> torch.Tensor:
        """The attention weight of every channel at every pixel (broadcastable to ``x``)."""
        weights = torch.sigmoid(self.excite(F.relu(self.squeeze(local_average(x, self.window)))))
        return expand_to_pixels(_like_layout(weights, x), self.window, x.shape[-2:])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.pixel_weights(x)


class RCAB(nn.Module):
    """Residual Channel Attention Block: ``x + CA(conv(relu(conv(x))))``."""

    def __init__(self, num_features: int, *, reduction: int, window: int | None) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(num_features, num_features, 3, padding=1)
        self.conv2 = nn.Conv2d(num_features, num_features, 3, padding=1)
        self.attention = ChannelAttention(num_features, reduction=reduction, window=window)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        features = self.conv2(F.relu(self.conv1(x), inplace=True))
        return multiply_add(x, features, self.attention.pixel_weights(features))


class FeatureAttention(nn.Module):
    """The paper's feature attention module: a learned, per-channel weighted sum of feature maps.

    Each of the ``num_inputs`` maps is average-pooled to a vector of ``C`` values; the vectors are
    stacked into a ``num_inputs x C`` array, zero-padded along the feature axis and convolved along
    that axis (the same small kernel for every channel, not a convolution across channels). A softmax
    over the feature axis turns the result into weights, so for every channel the weights of the
    inputs are positive and sum to one; the output is ``sum_i weight_i * map_i``.

    Shape:
        inputs: ``num_inputs`` tensors (N, C, H, W) -> (N, C, H, W)
    """

    def __init__(self, num_inputs: int, *, kernel_size: int = 3, window: int | None) -> None:
        super().__init__()
        if kernel_size % 2 == 0:
            raise ValueError(f"kernel_size must be odd, got {kernel_size}")
        self.num_inputs = num_inputs
        self.window = window
        self.conv = nn.Conv2d(1, 1, (kernel_size, 1), padding=(kernel_size // 2, 0))
        # Start as a plain average of the inputs: zero kernel -> equal weights.
        nn.init.zeros_(self.conv.weight)
        nn.init.zeros_(self.conv.bias)

    def _coarse_weights(self, inputs: list[torch.Tensor]) -> torch.Tensor:
        """Softmax weights on the pooling grid: (N, num_inputs, C, h, w)."""
        if len(inputs) != self.num_inputs:
            raise ValueError(f"expected {self.num_inputs} feature maps, got {len(inputs)}")
        pooled = torch.stack([local_average(x, self.window) for x in inputs], dim=1)  # N,K,C,h,w
        n, k, c, h, w = pooled.shape
        logits = self.conv(pooled.reshape(n, 1, k, c * h * w)).reshape(n, k, c, h, w)
        return torch.softmax(logits, dim=1)

    def attention_weights(self, inputs: list[torch.Tensor]) -> torch.Tensor:
        """Weights of shape (N, num_inputs, C, H, W), or (N, num_inputs, C, 1, 1) with global pooling."""
        weights = self._coarse_weights(inputs)
        # Bilinear interpolation is a convex combination: the weights still sum to one.
        return torch.stack([expand_to_pixels(weights[:, i], self.window, inputs[0].shape[-2:])
                            for i in range(self.num_inputs)], dim=1)

    def forward(self, inputs: list[torch.Tensor]) -> torch.Tensor:
        weights = self._coarse_weights(inputs)
        size = inputs[0].shape[-2:]
        output: torch.Tensor | None = None
        for index, x in enumerate(inputs):
            # Each input's weights are expanded in that input's memory layout (see _like_layout).
            pixel_weights = expand_to_pixels(_like_layout(weights[:, index], x), self.window, size)
            output = x * pixel_weights if output is None else multiply_add(output, pixel_weights, x)
        assert output is not None
        return output


def _derivative_kernels(size: int) -> dict[str, torch.Tensor]:
    """First and second derivative filters of size 3 (Sobel, Prewitt, Laplacian) or 5 (5x5 Sobel, LoG)."""
    if size == 3:
        smooth_sobel = torch.tensor([1.0, 2.0, 1.0])
        smooth_prewitt = torch.tensor([1.0, 1.0, 1.0])
        diff = torch.tensor([-1.0, 0.0, 1.0])
        second = torch.tensor([1.0, -2.0, 1.0])
        laplacian = torch.tensor([[0.0, 1.0, 0.0], [1.0, -4.0, 1.0], [0.0, 1.0, 0.0]])
    elif size == 5:
        smooth_sobel = torch.tensor([1.0, 4.0, 6.0, 4.0, 1.0])
        smooth_prewitt = torch.ones(5)
        diff = torch.tensor([-1.0, -2.0, 0.0, 2.0, 1.0])
        second = torch.tensor([1.0, 0.0, -2.0, 0.0, 1.0])
        laplacian = torch.tensor(  # the classic 5x5 Laplacian of Gaussian
            [[0.0, 0.0, 1.0, 0.0, 0.0], [0.0, 1.0, 2.0, 1.0, 0.0], [1.0, 2.0, -16.0, 2.0, 1.0],
             [0.0, 1.0, 2.0, 1.0, 0.0], [0.0, 0.0, 1.0, 0.0, 0.0]]
        )
    else:
        raise ValueError(f"edge filters exist for sizes 3 and 5, got {size}")
    return {
        f"sobel_x_{size}": torch.outer(smooth_sobel, diff),
        f"sobel_y_{size}": torch.outer(diff, smooth_sobel),
        f"prewitt_x_{size}": torch.outer(smooth_prewitt, diff),
        f"prewitt_y_{size}": torch.outer(diff, smooth_prewitt),
        f"hessian_xx_{size}": torch.outer(smooth_sobel, second),
        f"hessian_yy_{size}": torch.outer(second, smooth_sobel),
        f"hessian_xy_{size}": torch.outer(diff, diff),
        f"laplacian_{size}": laplacian,
    }


def edge_filters(sizes: tuple[int, ...] = (3, 5)) -> dict[str, torch.Tensor]:
    """The named edge/derivative filters of the edge filter bank, each normalised to unit L1 norm.

    Rows index y (downwards), columns x (to the right); ``*_x`` filters respond to horizontal change.
    """
    filters: dict[str, torch.Tensor] = {}
    for size in sizes:
        for name, kernel in _derivative_kernels(size).items():
            filters[name] = kernel / kernel.abs().sum()
    return filters


class EdgeFilterBank(nn.Module):
    """Multi-scale edge filtering: fixed-initialised derivative filters, then a 1x1 projection.

    A depthwise convolution applies every filter of :func:`edge_filters` to every input channel
    (smaller filters are centred inside the largest kernel); its weights start as those filters and
    stay trainable. A 1x1 convolution maps the responses to ``num_features`` channels.

    Shape:
        x: (N, in_channels, H, W) -> (N, num_features, H, W)
    """

    def __init__(self, in_channels: int, num_features: int, *, sizes: tuple[int, ...] = (3, 5)) -> None:
        super().__init__()
        filters = edge_filters(sizes)
        self.filter_names = tuple(filters)
        kernel_size = max(sizes)
        bank = torch.zeros(len(filters), kernel_size, kernel_size)
        for index, kernel in enumerate(filters.values()):
            offset = (kernel_size - kernel.shape[0]) // 2
            bank[index, offset : offset + kernel.shape[0], offset : offset + kernel.shape[1]] = kernel
        self.in_channels = in_channels
        self.num_filters = len(filters)
        self.filters = nn.Conv2d(
            in_channels, in_channels * self.num_filters, kernel_size,
            padding=kernel_size // 2, groups=in_channels, bias=False,
        )
        with torch.no_grad():
            self.filters.weight.copy_(bank.repeat(in_channels, 1, 1).unsqueeze(1))
        self.project = nn.Conv2d(in_channels * self.num_filters, num_features, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.project(self.filters(x))

    @torch.no_grad()
    def folded(self) -> nn.Conv2d:
        """One ``in_channels -> num_features`` convolution equal to filters-then-projection (both linear)."""
        kernel = self.filters.kernel_size[0]
        depthwise = self.filters.weight.reshape(self.in_channels, self.num_filters, kernel, kernel)
        projection = self.project.weight[:, :, 0, 0].reshape(-1, self.in_channels, self.num_filters)
        conv = nn.Conv2d(self.in_channels, projection.shape[0], kernel, padding=kernel // 2)
        conv.weight.copy_(torch.einsum("fck,ckhw->fchw", projection, depthwise))
        conv.bias.copy_(self.project.bias)
        return conv.to(self.project.weight.device)


class Downsample(nn.Sequential):
    """``steps`` strided 3x3 convolutions, each halving the resolution."""

    def __init__(self, num_features: int, steps: int) -> None:
        super().__init__(*[nn.Conv2d(num_features, num_features, 3, stride=2, padding=1) for _ in range(steps)])


class Upsample(nn.Sequential):
    """Pixel-shuffle upsampling by ``factor`` (a power of two, or 3) with a conv before each shuffle."""

    def __init__(self, num_features: int, factor: int, out_features: int | None = None) -> None:
        layers: list[nn.Module] = []
        if factor == 3:
            layers += [nn.Conv2d(num_features, 9 * num_features, 3, padding=1), nn.PixelShuffle(3)]
        elif factor >= 2 and factor & (factor - 1) == 0:
            for _ in range(int(math.log2(factor))):
                layers += [nn.Conv2d(num_features, 4 * num_features, 3, padding=1), nn.PixelShuffle(2)]
        elif factor != 1:
            raise ValueError(f"upsampling factor must be 1, 2, 3, 4 or 8, got {factor}")
        if out_features is not None and out_features != num_features:
            layers.append(nn.Conv2d(num_features, out_features, 1))
        super().__init__(*layers)
