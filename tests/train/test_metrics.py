import numpy as np
import pytest
import torch
from sklearn.metrics import confusion_matrix as sk_confusion
from sklearn.metrics import precision_recall_fscore_support, top_k_accuracy_score

from cnnkit.train.metrics import (ClassReport, MetricAccumulator, accuracy, confusion_matrix,
                                  format_confusion, top_k_accuracy)


@pytest.fixture
def scores():
    g = torch.Generator().manual_seed(3)
    out = torch.randn(200, 5, generator=g)
    out[:, 4] -= 10  # class 4 is never predicted: precision's 0/0 case
    y = torch.randint(0, 5, (200,), generator=g)
    return out, y


def test_confusion_and_per_class_scores_match_sklearn(scores):
    out, y = scores
    pred = out.argmax(1)
    cm = confusion_matrix(pred, y, 5)
    assert np.array_equal(cm.numpy(), sk_confusion(y.numpy(), pred.numpy(), labels=range(5)))
    report = ClassReport.from_confusion(cm)
    p, r, f, s = precision_recall_fscore_support(y.numpy(), pred.numpy(), labels=range(5),
                                                 zero_division=0)
    assert np.allclose(report.precision, p) and np.allclose(report.recall, r)
    assert np.allclose(report.f1, f) and report.support == s.tolist()


def test_accuracy_and_top_k_match_sklearn(scores):
    out, y = scores
    assert accuracy(out, y) == pytest.approx((out.argmax(1) == y).float().mean().item())
    for k in (1, 2, 3):
        assert top_k_accuracy(out, y, k) == pytest.approx(
            top_k_accuracy_score(y.numpy(), out.numpy(), k=k, labels=range(5)))


def test_accumulator_over_batches_equals_the_whole(scores):
    out, y = scores
    acc = MetricAccumulator(confusion=True, top_k=2)
    losses = []
    for i in range(0, 200, 64):
        loss = torch.nn.functional.cross_entropy(out[i:i + 64], y[i:i + 64])
        losses.append(loss * len(y[i:i + 64]))
        acc.update(loss, out[i:i + 64], torch.nn.functional.one_hot(y[i:i + 64], 5).float())
    result = acc.compute()
    assert result["loss"] == pytest.approx((sum(losses) / 200).item(), rel=1e-6)
    assert result["accuracy"] == pytest.approx(accuracy(out, y))
    assert result["top2_accuracy"] == pytest.approx(top_k_accuracy(out, y, 2))
    assert torch.equal(acc.confusion(), confusion_matrix(out.argmax(1), y, 5))


def test_text_tables_list_every_class():
    cm = torch.tensor([[3, 1], [0, 2]])
    text = format_confusion(cm, ["cat", "dog"])
    assert text.splitlines()[2].split() == ["cat", "3", "1"]
    table = ClassReport.from_confusion(cm).to_table(["cat", "dog"])
    assert table.splitlines()[1].split() == ["cat", "1.000", "0.750", "0.857", "4"]


def test_confusion_needs_a_batch():
    with pytest.raises(ValueError, match="no confusion matrix"):
        MetricAccumulator(confusion=True).confusion()
