"""Feature maps of one image as small grayscale PNGs (base64), for the web page.

Each recorded layer (every conv, activation and pooling output; every child of a Sequential,
see :func:`cnnkit.inspect.feature_maps.feature_maps`) sends its first ``max_channels`` channels,
each min–max scaled to 0–255 on its own so that faint maps stay visible. The page enlarges them
with nearest-neighbour scaling, so an 8×8 map stays an 8×8 PNG of a few hundred bytes.
"""
from __future__ import annotations

import base64
import io

import numpy as np
import torch
from PIL import Image

from cnnkit.inspect.feature_maps import feature_maps


def png_base64(gray: np.ndarray) -> str:
    """A uint8 (H, W) array -> a base64 PNG string."""
    buffer = io.BytesIO()
    Image.fromarray(gray, mode="L").save(buffer, format="PNG")
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def scale_to_uint8(maps: torch.Tensor) -> np.ndarray:
    """Min–max scale each channel to 0–255 (a constant channel becomes 0).

    Shape:
        (C, H, W) float -> (C, H, W) uint8.
    """
    flat = maps.float().reshape(maps.shape[0], -1)  # (C, H, W) -> (C, H*W)
    low = flat.min(dim=1, keepdim=True).values
    spread = (flat.max(dim=1, keepdim=True).values - low).clamp_min(1e-12)
    scaled = ((flat - low) / spread * 255.0).round().to(torch.uint8)
    return scaled.reshape(maps.shape).numpy()  # (C, H*W) -> (C, H, W)


def image_to_png_base64(image: np.ndarray) -> str:
    """The model's uint8 input (C, H, W) as a PNG (RGB for 3 channels), base64."""
    buffer = io.BytesIO()
    if image.shape[0] == 1:
        Image.fromarray(image[0], mode="L").save(buffer, format="PNG")
    else:
        Image.fromarray(image.transpose(1, 2, 0)).save(buffer, format="PNG")  # (C,H,W)->(H,W,C)
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def encode_feature_maps(model: torch.nn.Module, image: torch.Tensor, *, max_channels: int,
                        max_layers: int) -> list[dict]:
    """Run ``model`` on one normalised image and encode its feature maps.

    Args:
        model: a model used by nobody else during the call (hooks are attached to it).
        image: one normalised float image (C, H, W).
        max_channels: channels sent per layer.
        max_layers: layers sent (the first ones in forward order).

    Returns:
        ``[{"name", "kind", "shape": [C, H, W], "maps": [base64 PNG, ...]}, ...]``.
    """
    layers = []
    for recorded in feature_maps(model, image)[:max_layers]:
        gray = scale_to_uint8(recorded.maps[:max_channels])
        layers.append({"name": recorded.name, "kind": recorded.kind,
                       "shape": list(recorded.maps.shape),
                       "maps": [png_base64(channel) for channel in gray]})
    return layers
