"""MixUp and CutMix: images and labels are mixed with the same per-sample weight."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from cnnkit.augment import CutMix, MixUp


def test_mixup_is_a_convex_combination_per_sample():
    n, k = 64, 5
    x = torch.rand(n, 2, 4, 4)
    y = torch.randint(0, k, (n,))
    mixup = MixUp(0.4, num_classes=k, seed=0)
    out, soft = mixup(x, y)
    # Draw the same permutation and weights again from an identically seeded generator.
    perm, lam = MixUp(0.4, num_classes=k).sample(n, torch.Generator().manual_seed(0), x.device)
    lam4 = lam.view(n, 1, 1, 1)
    torch.testing.assert_close(out, lam4 * x + (1 - lam4) * x[perm])
    one_hot = F.one_hot(y, k).float()
    lam2 = lam.view(n, 1)  # (N,) -> (N, 1)
    torch.testing.assert_close(soft, lam2 * one_hot + (1 - lam2) * one_hot[perm])
    assert soft.shape == (n, k) and soft.dtype == torch.float32
    torch.testing.assert_close(soft.sum(1), torch.ones(n))
    assert lam.min() >= 0 and lam.max() <= 1 and lam.std() > 0.1  # per-sample weights


def test_mixup_weights_follow_beta_alpha_alpha():
    _, lam = MixUp(0.5, num_classes=2).sample(20_000, torch.Generator().manual_seed(1),
                                              torch.device("cpu"))
    # Beta(a, a): mean 1/2, variance 1 / (4 (2a + 1)) = 1/8 for a = 0.5.
    assert abs(lam.mean().item() - 0.5) < 0.01
    assert abs(lam.var().item() - 1 / 8) < 0.01


def test_mixup_keeps_soft_labels_soft_and_checks_their_width():
    soft = torch.softmax(torch.randn(6, 3), 1)
    out, y = MixUp(1.0, num_classes=3, seed=0)(torch.rand(6, 1, 2, 2), soft)
    torch.testing.assert_close(y.sum(1), torch.ones(6))
    with pytest.raises(ValueError, match=r"soft labels have 3 columns but num_classes=4"):
        MixUp(1.0, num_classes=4)(torch.rand(6, 1, 2, 2), soft)


def test_cutmix_label_weights_equal_pasted_area():
    n, k, h, w = 256, 4, 12, 10
    x = torch.rand(n, 3, h, w)
    y = torch.randint(0, k, (n,))
    out, soft = CutMix(1.0, num_classes=k, seed=0)(x, y)
    perm, _ = CutMix(1.0, num_classes=k).sample(n, torch.Generator().manual_seed(0), x.device)
    from_partner = (out == x[perm]).all(1) & (out != x).any(1)  # (N, H, W): pixels pasted
    kept = (out == x).all(1)
    assert (from_partner | kept).all()  # every pixel comes from one of the two images
    area = from_partner.flatten(1).float().mean(1)  # (N, H, W) -> (N,)
    one_hot = F.one_hot(y, k).float()
    expected = (1 - area).view(n, 1) * one_hot + area.view(n, 1) * one_hot[perm]
    moved = perm != torch.arange(n)
    torch.testing.assert_close(soft[moved], expected[moved])
    assert area.max() > 0.5 and (area[moved] > 0).float().mean() > 0.8


def test_mix_p_zero_only_one_hots_the_labels():
    x = torch.rand(5, 1, 3, 3)
    y = torch.tensor([0, 1, 2, 1, 0])
    for mix in (MixUp(0.2, num_classes=3, p=0.0, seed=0),
                CutMix(1.0, num_classes=3, p=0.0, seed=0)):
        out, soft = mix(x, y)
        assert torch.equal(out, x)
        assert torch.equal(soft, F.one_hot(y, 3).float())


@pytest.mark.parametrize("make,match", [
    (lambda: MixUp(0.0, num_classes=3), r"alpha must be > 0 .*got 0\.0"),
    (lambda: CutMix(1.0, num_classes=0), r"num_classes must be >= 1, got 0"),
])
def test_bad_mix_arguments(make, match):
    with pytest.raises(ValueError, match=match):
        make()


def test_labels_out_of_range_are_reported():
    with pytest.raises(ValueError, match=r"labels must be in \[0, 3\) .* from 0 to 5"):
        MixUp(0.2, num_classes=3)(torch.rand(2, 1, 2, 2), torch.tensor([0, 5]))
