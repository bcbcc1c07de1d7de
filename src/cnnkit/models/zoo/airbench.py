"""An airbench-style fast CIFAR-10 net (after Keller Jordan's airbench94).

::

    whiten: 2x2 conv, 24 filters (2 * C*2*2, no padding) -> GELU
    block1..3: conv 3x3 -> maxpool 2x2 -> BN -> GELU -> conv 3x3 -> BN -> GELU
               (widths 64, 256, 256 times ``width``)
    head: global max pool -> flatten -> fc (no bias) -> logits * 1/9

The 2x2 first conv is "whitening-friendly": airbench sets its filters once from the training
images (the eigenvectors of the 2x2 patch covariance, ``init_whitening``) and then freezes them.
On 32x32: 32 -> 31 (2x2 conv) -> 15 -> 7 -> 3 -> global max pool. airbench's fixed 3x3 final
pool is a global max pool here, so any input of at least 9x9 works. The training recipe
(label smoothing, Nesterov SGD, flip + translate, lookahead...) lives in ``cnnkit.train``.
"""
from __future__ import annotations

import torch
from torch import nn

from cnnkit.models.base import ZooModel, check_input_size, spatial_layers
from cnnkit.models.registry import register

_WIDTHS = (64, 256, 256)
_LOGIT_SCALE = 1 / 9  # airbench's output temperature


class ConvGroup(nn.Sequential):
    """conv 3x3 -> maxpool 2x2 -> BN -> GELU -> conv 3x3 -> BN -> GELU.

    Shape:
        (N, in_channels, H, W) -> (N, out_channels, floor(H/2), floor(W/2)).
    """

    def __init__(self, in_channels: int, out_channels: int):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, padding=1, bias=False)
        self.pool = nn.MaxPool2d(2)
        self.norm1 = nn.BatchNorm2d(out_channels)
        self.act1 = nn.GELU()
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, padding=1, bias=False)
        self.norm2 = nn.BatchNorm2d(out_channels)
        self.act2 = nn.GELU()


class AirbenchNet(ZooModel):
    """A small BN + GELU net that reaches about 94 % on CIFAR-10 in seconds on a GPU.

    Args:
        num_classes, in_channels, input_size: see ``cnnkit.models.create``.
        width: multiplier of the block widths (64, 256, 256).

    Shape:
        (N, C, H, W) -> whiten (N, 8C, H-1, W-1) -> blocks (N, 256*width, (H-1)/8, (W-1)/8)
        -> (N, 256*width) -> (N, num_classes).

    Raises:
        ValueError: ``width`` not positive, or an input smaller than 9x9.

    Example:
        >>> create("airbench", num_classes=10).whiten.kernel_size  # doctest: +SKIP
        (2, 2)
    """

    classifier_path = "fc"

    def __init__(self, *, num_classes: int, in_channels: int, input_size: tuple[int, int],
                 width: float = 1.0):
        super().__init__(num_classes=num_classes, in_channels=in_channels, input_size=input_size)
        if isinstance(width, bool) or not isinstance(width, (int, float)) or width <= 0:
            raise ValueError(f"width must be a positive number (1.0 = airbench's 64/256/256), "
                             f"got {width!r}")
        widths = [max(1, round(w * width)) for w in _WIDTHS]
        whiten_channels = 2 * in_channels * 2 * 2
        self.whiten = nn.Conv2d(in_channels, whiten_channels, kernel_size=2, bias=True)
        self.act = nn.GELU()
        self.block1 = ConvGroup(whiten_channels, widths[0])
        self.block2 = ConvGroup(widths[0], widths[1])
        self.block3 = ConvGroup(widths[1], widths[2])
        self.global_pool = nn.AdaptiveMaxPool2d((1, 1))
        self.num_features = widths[2]
        self.fc = self._make_classifier(num_classes)
        self.feature_size = check_input_size("airbench", input_size,
                                             spatial_layers(self.named_modules()))

    def _make_classifier(self, num_classes: int) -> nn.Linear:
        return nn.Linear(self.num_features, num_classes, bias=False)

    @torch.no_grad()
    def init_whitening(self, images: torch.Tensor, eps: float = 5e-4) -> None:
        """Set the 2x2 ``whiten`` filters so that they decorrelate the images' 2x2 patches.

        The filters are the eigenvectors of the patch covariance scaled by 1/sqrt(eigenvalue
        + eps), and their negatives (so GELU keeps both signs). Freeze them afterwards with
        ``model.whiten.requires_grad_(False)`` as airbench does.

        Args:
            images: float (N, in_channels, H, W) training images, normalised like the inputs.
            eps: added to the eigenvalues before the square root.

        Shape:
            images (N, C, H, W) -> patches (N*(H-1)*(W-1), C*2*2) -> filters (2*C*4, C, 2, 2).

        Raises:
            ValueError: ``images`` is not (N, in_channels, H, W).
        """
        self._check_input(images)
        channels = self.in_channels
        patches = images.float().unfold(2, 2, 1).unfold(3, 2, 1)  # -> (N, C, H-1, W-1, 2, 2)
        patches = patches.permute(0, 2, 3, 1, 4, 5)  # -> (N, H-1, W-1, C, 2, 2)
        patches = patches.reshape(-1, channels * 4)  # -> (N*(H-1)*(W-1), C*2*2)
        covariance = patches.T @ patches / patches.shape[0]
        eigenvalues, eigenvectors = torch.linalg.eigh(covariance)
        filters = eigenvectors.T / torch.sqrt(eigenvalues + eps)[:, None]
        filters = filters.reshape(channels * 4, channels, 2, 2)  # (C*4, C*4) -> (C*4, C, 2, 2)
        weight = torch.cat([filters, -filters]).to(self.whiten.weight)
        self.whiten.weight.copy_(weight)
        self.whiten.bias.zero_()

    def feature_layers(self):
        """Whitening conv, GELU, then three conv groups that each halve the size."""
        return [(name, getattr(self, name)) for name in
                ("whiten", "act", "block1", "block2", "block3")]

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        x = self.act(self.whiten(x))
        return self.block3(self.block2(self.block1(x)))

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        x = torch.flatten(self.global_pool(x), 1)  # (N, C, 1, 1) -> (N, C)
        return x if pre_logits else self.fc(x) * _LOGIT_SCALE


@register("airbench", description="airbench-style fast CIFAR net: 2x2 whitening conv, three "
          "conv-BN-GELU blocks (64/256/256), ~94% CIFAR-10 in seconds on a GPU; inputs >= 9x9",
          default_input_size=32)
def airbench(*, num_classes, in_channels, input_size, **kwargs) -> AirbenchNet:
    """The airbench-style net, 1.97M parameters on 32x32x3 at width 1."""
    return AirbenchNet(num_classes=num_classes, in_channels=in_channels, input_size=input_size,
                       **kwargs)
