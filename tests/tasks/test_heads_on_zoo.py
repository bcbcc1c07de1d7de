"""Every task head on every zoo backbone: output shapes and gradients (issue #15's "each head
on every zoo backbone that the interface allows").

Each backbone is built at the smallest square input it accepts (32, else 64), one channel, and
wrapped by each head through ``feature_info`` / ``forward_stages`` only. densenet121 (120
layers: about 20 s for all heads on a 2-core CPU) gets one head of each kind of attachment
(the last stage: localization; every stage: unet).
"""
from __future__ import annotations

import pytest
import torch

from cnnkit.models import registry
from cnnkit.tasks.build import HEADS, task_model

K = 3
SLOW = {"densenet121": {"localization", "unet"}}


def _backbone(name: str):
    for size in (32, 64):
        try:
            return registry.create(name, num_classes=10, in_channels=1,
                                   input_size=(size, size)), size
        except ValueError:
            continue
    pytest.fail(f"{name} accepts neither 32x32 nor 64x64 inputs")


def _check_output(task: str, out, n: int, size: int) -> torch.Tensor:
    if task == "localize":
        assert out["logits"].shape == (n, K) and out["boxes"].shape == (n, 4)
        assert bool(((out["boxes"] > 0) & (out["boxes"] < 1)).all())  # sigmoid-bounded
        return out["logits"].sum() + out["boxes"].sum()
    if task == "segment":
        assert out.shape == (n, K, size, size)  # logits at the input resolution
        return out.sum()
    if "logits0" in out:  # FCOS: per-level class logits, ltrb distances, centerness
        levels = sum(1 for key in out if key.startswith("logits"))
        for i in range(levels):
            assert out[f"logits{i}"].shape[:2] == (n, K)
            assert out[f"ltrb{i}"].shape[1] == 4 and out[f"centerness{i}"].shape[1] == 1
            assert out[f"ltrb{i}"].shape[-2:] == out[f"logits{i}"].shape[-2:]
        return sum(v.sum() for v in out.values())
    assert out["heatmap"].shape[:2] == (n, K)
    assert out["size"].shape[1] == 2 and out["offset"].shape[1] == 2
    assert out["size"].shape[-2:] == out["heatmap"].shape[-2:]
    return sum(v.sum() for v in out.values())


@pytest.mark.parametrize("name", registry.names())
def test_every_head_attaches_to_the_zoo_backbone(name):
    torch.manual_seed(0)
    backbone, size = _backbone(name)
    for task, head in HEADS:
        if name in SLOW and head not in SLOW[name]:
            continue
        model = task_model(task, backbone, K, head)
        model.train()
        out = model(torch.randn(2, 1, size, size))
        _check_output(task, out, 2, size).backward()
        head_params = [(n, p) for n, p in model.named_parameters()
                       if not n.startswith("backbone.")]
        assert head_params, f"{name}/{head}: the head has no parameters of its own"
        missing = [n for n, p in head_params if p.grad is None or not torch.isfinite(p.grad).all()]
        assert not missing, f"{name}/{head}: no finite gradient for {missing[:3]}"
        assert any(p.grad is not None for n, p in model.named_parameters()
                   if n.startswith("backbone.")), f"{name}/{head}: the backbone got no gradient"
        model.zero_grad(set_to_none=True)
