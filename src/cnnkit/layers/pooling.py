"""Pooling: max, average, sum and L2-norm over sliding windows, plus global average/max pooling.

All windowed pools act on each channel separately (the depth is unchanged) and share the
output-size rule of convolution, O = (W − K + 2P)/S + 1, with window size K = ``size`` and
stride S = ``stride`` (default: the window size, i.e. non-overlapping windows).

Padding conventions: max pooling pads with −∞ (padding never wins); average pooling pads with
zeros but does *not* count them (``count_include_pad=False``, as Keras' 'same'), so a border
window averages only real pixels; sum and L2 pooling pad with zeros, which add nothing.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from cnnkit.layers.base import Layer, WindowLayer, format_token


class _Pool(WindowLayer):
    """Window geometry and spec token shared by the windowed pools."""

    def __init__(self, size=2, stride=None, padding=0, rounding: str | None = None, *,
                 name: str | None = None):
        super().__init__(size, size if stride is None else stride, padding, 1, rounding,
                         name=name, kernel_name="size")
        if self.padding_mode == "explicit":
            for pad, k in zip(self.padding, self.kernel_size):
                if pad > k // 2:
                    raise ValueError(f"padding must be at most half the window size {size!r} "
                                     f"(PyTorch's limit), got {padding!r}")

    def _padded(self, x: torch.Tensor, value: float) -> tuple[torch.Tensor, tuple[int, int]]:
        """Pad asymmetric 'same' borders by hand; return symmetric padding for the pool call."""
        top, bottom, left, right = self.pads(x.shape[-2], x.shape[-1])
        if top == bottom and left == right:
            return x, (top, left)
        return F.pad(x, (left, right, top, bottom), value=value), (0, 0)

    def to_spec(self) -> str:
        args = [self.kernel_size] if self.stride == self.kernel_size else [self.kernel_size,
                                                                           self.stride]
        kwargs = {**self._spec_padding(), **self._spec_rounding()}
        return format_token(self.token, args, kwargs)

    def extra_repr(self) -> str:
        return f"size={self.kernel_size}, stride={self.stride}, padding={self.padding!r}"


class MaxPool(_Pool):
    """Max pooling: the largest value in each ``size``×``size`` window.

    Args:
        size: window size K (int or (K_h, K_w)), default 2.
        stride: S, default ``size``.
        padding: an int (at most size // 2), "valid" or "same"; padded cells hold −∞.
        rounding: "warn" (default), "floor" or "strict", as for ``Conv``.

    Shape:
        (N, C, H, W) -> (N, C, H_out, W_out), O = (W − K + 2P)/S + 1 per axis.

    Example:
        >>> MaxPool(2)(torch.zeros(1, 32, 26, 26)).shape
        torch.Size([1, 32, 13, 13])
    """

    token = "maxpool"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x, pad = self._padded(x, float("-inf"))
        return F.max_pool2d(x, self.kernel_size, self.stride, pad)


class AvgPool(_Pool):
    """Average pooling: the mean of each window; zero padding is not counted in the mean.

    Args and Shape: as ``MaxPool``.

    Example:
        >>> AvgPool(2)(torch.ones(1, 3, 4, 4)).shape
        torch.Size([1, 3, 2, 2])
    """

    token = "avgpool"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        top, bottom, left, right = self.pads(x.shape[-2], x.shape[-1])
        if top == bottom and left == right:
            return F.avg_pool2d(x, self.kernel_size, self.stride, (top, left),
                                count_include_pad=False)
        # Asymmetric 'same': sum of real pixels / number of real pixels in each window.
        ones = torch.ones_like(x[:1, :1])  # (1, 1, H, W)
        borders = (left, right, top, bottom)
        total = F.avg_pool2d(F.pad(x, borders), self.kernel_size, self.stride, divisor_override=1)
        count = F.avg_pool2d(F.pad(ones, borders), self.kernel_size, self.stride,
                             divisor_override=1)
        return total / count


class SumPool(_Pool):
    """Sum pooling: the sum of each window (average pooling times the window area).

    Args and Shape: as ``MaxPool``; padded cells are zeros.

    Example:
        >>> SumPool(2)(torch.ones(1, 1, 4, 4))
        tensor([[[[4., 4.],
                  [4., 4.]]]])
    """

    token = "sumpool"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x, pad = self._padded(x, 0.0)
        return F.avg_pool2d(x, self.kernel_size, self.stride, pad, divisor_override=1)


class _SafeSqrt(torch.autograd.Function):
    """sqrt(u) whose gradient at u = 0 is 0 instead of ∞ (the subgradient of ‖x‖ at 0 we pick)."""

    @staticmethod
    def forward(ctx, u: torch.Tensor) -> torch.Tensor:
        root = u.clamp_min(0).sqrt()
        ctx.save_for_backward(root)
        return root

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        (root,) = ctx.saved_tensors
        scale = torch.where(root > 0, 0.5 / root.clamp_min(torch.finfo(root.dtype).tiny),
                            torch.zeros_like(root))
        return grad * scale


class L2Pool(_Pool):
    """L2-norm pooling: sqrt(sum of squares) over each window.

    The gradient is x / ‖window‖; for an all-zero window (norm 0, not differentiable) cnnkit
    uses the subgradient 0, so training never sees NaN.

    Args and Shape: as ``MaxPool``; padded cells are zeros.

    Example:
        >>> L2Pool(2)(torch.full((1, 1, 2, 2), 3.0))
        tensor([[[[6.]]]])
    """

    token = "l2pool"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        squares, pad = self._padded(x * x, 0.0)
        sums = F.avg_pool2d(squares, self.kernel_size, self.stride, pad, divisor_override=1)
        return _SafeSqrt.apply(sums)


class _GlobalPool(Layer):
    def _check_input(self, input_shape: tuple[int, ...]) -> None:
        self._require_image(input_shape)

    def compute_output_shape(self, input_shape) -> tuple[int, ...]:
        """(C, H, W) -> (C,): one number per channel."""
        shape = tuple(input_shape)
        self._check_input(shape)
        return (shape[0],)


class GlobalAvgPool(_GlobalPool):
    """Global average pooling: the mean of each whole feature map (replaces Flatten + FC).

    Shape:
        (N, C, H, W) -> (N, C).

    Example:
        >>> GlobalAvgPool()(torch.ones(2, 8, 5, 5)).shape
        torch.Size([2, 8])
    """

    token = "gap"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.mean(dim=(-2, -1))  # (N, C, H, W) -> (N, C)


class GlobalMaxPool(_GlobalPool):
    """Global max pooling: the largest value of each whole feature map.

    Shape:
        (N, C, H, W) -> (N, C).
    """

    token = "globalmaxpool"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.amax(dim=(-2, -1))  # (N, C, H, W) -> (N, C)
