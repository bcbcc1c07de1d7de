"""GIoU, Dice and focal losses against hand-computed values."""
import math

import pytest
import torch
import torch.nn.functional as F

from cnnkit.tasks.losses import dice_loss, giou_loss, sigmoid_focal_loss


def test_giou_loss_hand_values():
    pred = torch.tensor([[2.0, 0, 3, 1], [0.0, 0, 2, 2]])
    target = torch.tensor([[0.0, 0, 1, 1], [0.0, 0, 2, 2]])
    # disjoint unit boxes: GIoU = 0 - (3 - 2) / 3 -> loss 4/3; identical -> 0
    per_pair = giou_loss(pred, target, reduction="none")
    torch.testing.assert_close(per_pair, torch.tensor([4 / 3, 0.0]))
    torch.testing.assert_close(giou_loss(pred, target), torch.tensor(2 / 3))
    torch.testing.assert_close(giou_loss(pred, target, reduction="sum"), torch.tensor(4 / 3))


def test_giou_loss_rejects_unknown_reduction():
    with pytest.raises(ValueError, match="reduction must be one of"):
        giou_loss(torch.zeros(1, 4), torch.zeros(1, 4), reduction="avg")


def test_dice_loss_hand_value():
    # p = 0.5 everywhere; class 0: inter 0.5, |P| 1, |T| 1 -> (1 + 1) / (2 + 1) = 2/3;
    # class 1 the same.
    loss = dice_loss(torch.zeros(1, 2, 1, 2), torch.tensor([[[0, 1]]]))
    torch.testing.assert_close(loss, torch.tensor(1 / 3))


def test_dice_loss_ignores_pixels_and_gives_them_no_gradient():
    logits = torch.zeros(1, 2, 1, 2, requires_grad=True)
    loss = dice_loss(logits, torch.tensor([[[0, 255]]]))
    # only pixel 0 counts: class 0 (1 + 1) / (0.5 + 1 + 1) = 0.8,
    # class 1 (0 + 1) / (0.5 + 0 + 1) = 2/3
    torch.testing.assert_close(loss, torch.tensor(1 - (0.8 + 2 / 3) / 2))
    loss.backward()
    assert logits.grad[0, :, 0, 1].abs().max() == 0
    assert logits.grad[0, :, 0, 0].abs().max() > 0


def test_dice_loss_of_a_perfect_prediction_is_near_zero():
    masks = torch.tensor([[[0, 1, 2], [2, 2, 0]]])
    logits = F.one_hot(masks, 4).permute(0, 3, 1, 2).float() * 50  # (N, H, W, K) -> (N, K, H, W)
    assert dice_loss(logits, masks) < 1e-4


def test_dice_loss_rejects_bad_masks():
    with pytest.raises(ValueError, match="class index 3"):
        dice_loss(torch.zeros(1, 2, 1, 2), torch.tensor([[[0, 3]]]))
    with pytest.raises(TypeError, match="integer tensor"):
        dice_loss(torch.zeros(1, 2, 1, 2), torch.zeros(1, 1, 2))
    with pytest.raises(ValueError, match="masks must have shape"):
        dice_loss(torch.zeros(1, 2, 1, 2), torch.zeros(1, 2, 2, dtype=torch.long))


def test_focal_loss_hand_value():
    # p = 0.5, target 1: CE = ln 2, (1 - p_t)^2 = 1/4, alpha_t = 0.25; target 0: alpha_t = 0.75
    loss = sigmoid_focal_loss(torch.tensor([0.0, 0.0]), torch.tensor([1.0, 0.0]), reduction="none")
    expected = torch.tensor([0.25 * 0.25 * math.log(2), 0.75 * 0.25 * math.log(2)])
    torch.testing.assert_close(loss, expected)


def test_focal_loss_with_gamma_0_and_no_alpha_is_bce():
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(5, 3, generator=g)
    targets = (torch.rand(5, 3, generator=g) > 0.5).float()
    torch.testing.assert_close(
        sigmoid_focal_loss(logits, targets, alpha=None, gamma=0.0, reduction="mean"),
        F.binary_cross_entropy_with_logits(logits, targets),
    )


def test_focal_loss_down_weights_easy_examples():
    easy = sigmoid_focal_loss(torch.tensor([4.0]), torch.tensor([1.0]), alpha=None)
    bce = F.binary_cross_entropy_with_logits(torch.tensor([4.0]), torch.tensor([1.0]))
    assert easy < bce / 100
    assert sigmoid_focal_loss(torch.tensor([50.0, -50.0]), torch.tensor([1.0, 0.0])) < 1e-6


def test_focal_loss_rejects_bad_arguments():
    with pytest.raises(ValueError, match="alpha"):
        sigmoid_focal_loss(torch.zeros(1), torch.zeros(1), alpha=1.5)
    with pytest.raises(ValueError, match="targets must have the shape"):
        sigmoid_focal_loss(torch.zeros(2), torch.zeros(3))
