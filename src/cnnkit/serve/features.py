"""Feature maps of one image as small grayscale PNGs (base64), for the web page.

Each recorded layer (every conv, activation and pooling output; every child of a Sequential,
the same rule as :func:`cnnkit.inspect.feature_maps.feature_maps`) sends its first
``max_channels`` channels, each min–max scaled to 0–255 on its own so that faint maps stay
visible. The page enlarges them with nearest-neighbour scaling, so an 8×8 map stays an 8×8 PNG
of a few hundred bytes.

The server computes feature maps for a whole batch of requests in one forward pass
(:func:`batch_feature_maps`, run by a :class:`~cnnkit.serve.batching.DynamicBatcher`) and encodes
each image's PNGs afterwards, outside the batcher (:func:`encode_layers`).
"""
from __future__ import annotations

import base64
import io
from typing import NamedTuple

import numpy as np
import torch
from PIL import Image

from cnnkit.inspect.feature_maps import watched_modules, layer_kind


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


class LayerMaps(NamedTuple):
    """One layer's output for one image: name, kind, full (C, H, W) shape, first channels."""

    name: str
    kind: str
    shape: tuple[int, int, int]
    maps: torch.Tensor  # (min(C, max_channels), H, W)


def batch_feature_maps(model: torch.nn.Module, x: torch.Tensor, *, max_channels: int,
                       max_layers: int) -> tuple[list[list[LayerMaps]], torch.Tensor]:
    """One forward pass over a batch: each image's feature maps and the model's logits.

    Records the same layers, in the same order, as
    :func:`cnnkit.inspect.feature_maps.feature_maps` does for one image, but keeps only the
    first ``max_layers`` spatial outputs and their first ``max_channels`` channels (copied, so
    the full activations are freed as the pass goes on).

    Args:
        model: a model used by nobody else during the call (hooks are attached to it); it is
            put in eval mode.
        x: normalised float images (N, C, H, W).
        max_channels: channels kept per layer.
        max_layers: layers kept (the first ones in forward order).

    Shape:
        x (N, C, H, W) -> N lists of :class:`LayerMaps` with maps (C'', H', W'),
        C'' = min(C', max_channels), and logits (N, K).
    """
    recorded: list[tuple[str, str, torch.Tensor, tuple[int, ...]]] = []

    def make_hook(name: str, kind: str):
        def hook(_module, _inputs, output):
            if (isinstance(output, torch.Tensor) and output.ndim == 4
                    and len(recorded) < max_layers):
                # (N, C', H', W') -> (N, min(C', max_channels), H', W'), a copy
                kept = output[:, :max_channels].detach().float().cpu().clone()
                recorded.append((name, kind, kept, tuple(output.shape[1:])))
        return hook

    handles = [module.register_forward_hook(make_hook(name, layer_kind(module)))
               for name, module in watched_modules(model)]
    try:
        model.eval()
        with torch.inference_mode():
            logits = model(x)
    finally:
        for handle in handles:
            handle.remove()
    per_image = [[LayerMaps(name, kind, shape, maps[i]) for name, kind, maps, shape in recorded]
                 for i in range(len(x))]
    return per_image, logits.float().cpu()


def encode_layers(layers: list[LayerMaps]) -> list[dict]:
    """One image's recorded layers -> ``[{"name", "kind", "shape", "maps": [PNG, ...]}]``."""
    return [{"name": layer.name, "kind": layer.kind, "shape": list(layer.shape),
             "maps": [png_base64(channel) for channel in scale_to_uint8(layer.maps)]}
            for layer in layers]
