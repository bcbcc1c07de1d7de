"""The Keras mixin on a stand-in model: a Keras MNIST tutorial's lines run unchanged."""
import numpy as np
import pytest
import torch
from torch import nn
from train_helpers import make_blobs

from cnnkit.keras.training import KerasModelMixin


class KerasNet(KerasModelMixin, nn.Sequential):
    """Like the tutorial's model: ends in Dense(K, activation='softmax'); knows its input shape."""

    input_shape = (1, 8, 8)


def _tutorial_model(softmax=True):
    torch.manual_seed(0)
    layers = [nn.Conv2d(1, 8, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
              nn.Linear(128, 4)]
    return KerasNet(*layers, *([nn.Softmax(dim=1)] if softmax else []))


@pytest.fixture
def keras_data():
    """NumPy, Keras layout: x (N, H, W, C) float32 in 0..1-ish, y one-hot, like the tutorial."""
    x, y = make_blobs(640)
    x_nhwc = x.permute(0, 2, 3, 1).numpy()  # (N, C, H, W) -> (N, H, W, C)
    return x_nhwc, np.eye(4, dtype=np.float32)[y.numpy()], y.numpy()


def test_keras_mnist_tutorial_lines_run_unchanged(keras_data):
    x_train, y_train, _ = keras_data
    model = _tutorial_model()
    model.compile(loss="categorical_crossentropy", optimizer="adam", metrics=["accuracy"])
    history = model.fit(x_train, y_train, batch_size=128, epochs=4, validation_split=0.1,
                        verbose=0)
    assert set(history.history) >= {"loss", "accuracy", "val_loss", "val_accuracy"}
    assert len(history.history["loss"]) == 4
    assert history.history["loss"][-1] < history.history["loss"][0]
    x_test, y_test, labels = (a[:200] for a in keras_data)
    score = model.evaluate(x_test, y_test, verbose=0)
    assert isinstance(score, list) and len(score) == 2
    assert score[1] > 0.9
    probs = model.predict(x_test)
    assert probs.shape == (200, 4) and np.allclose(probs.sum(1), 1.0, atol=1e-5)
    with torch.no_grad():
        direct = model(torch.from_numpy(x_test).permute(0, 3, 1, 2)).numpy()
    assert np.allclose(probs, direct, atol=1e-6)  # the softmax is not applied twice
    assert (probs.argmax(1) == labels).mean() == pytest.approx(score[1])


def test_sparse_labels_uint8_and_nchw_inputs(keras_data):
    x, _, labels = keras_data
    x_uint8 = (np.clip(x, 0, 1) * 255).astype(np.uint8)[..., 0]  # (N, H, W) grey, 0..255
    model = _tutorial_model(softmax=False)
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["acc"])
    model.fit(x_uint8, labels, epochs=4, verbose=0)
    loss, acc = model.evaluate(x_uint8, labels, verbose=0)
    assert acc > 0.8 and loss > 0
    as_nchw = torch.from_numpy(x_uint8).unsqueeze(1)  # (N, H, W) -> (N, 1, H, W)
    assert np.allclose(model.predict(as_nchw), model.predict(x_uint8))


def test_squared_error_loss_and_evaluate_without_metrics(keras_data):
    x, y, _ = keras_data
    model = _tutorial_model()
    model.compile(optimizer=lambda params: torch.optim.SGD(params, lr=0.5), loss="mse")
    history = model.fit(x, y, epochs=3, verbose=0, validation_data=(x[:64], y[:64]))
    assert history.history["loss"][-1] < history.history["loss"][0]
    assert isinstance(model.evaluate(x[:64], y[:64]), float)


def test_fit_continues_with_the_same_optimizer(keras_data):
    x, y, _ = keras_data
    model = _tutorial_model()
    model.compile(optimizer="sgd", loss="categorical_crossentropy")
    model.fit(x, y, epochs=1, verbose=0)
    first = model._keras.built_optimizer
    model.fit(x, y, epochs=1, verbose=0)
    assert model._keras.built_optimizer is first


def test_errors_name_the_problem(keras_data):
    x, y, _ = keras_data
    model = _tutorial_model()
    with pytest.raises(ValueError, match=r"call model.compile\(optimizer=..."):
        model.fit(x, y)
    with pytest.raises(ValueError, match="compile\\(\\) needs a loss"):
        model.compile(optimizer="adam")
    with pytest.raises(ValueError, match=r"unknown loss 'categorical_crossentropi'"):
        model.compile(optimizer="adam", loss="categorical_crossentropi")
    with pytest.raises(ValueError, match=r"unknown metric 'f1'"):
        model.compile(optimizer="adam", loss="mse", metrics=["f1"])
    with pytest.raises(ValueError, match=r"unknown optimizer 'adamax'"):
        model.compile(optimizer="adamax", loss="mse")
    model.compile(optimizer="adam", loss="mse")
    with pytest.raises(ValueError, match=r"x has shape \(4, 9, 9, 1\) but the model expects "
                                         r"images 8x8x1"):
        model.fit(np.zeros((4, 9, 9, 1), np.float32), y[:4])
    with pytest.raises(ValueError, match=r"validation_split must be in \[0, 1\), got 1.5"):
        model.fit(x, y, validation_split=1.5)
    with pytest.raises(ValueError, match="y is missing"):
        model.fit(x)


@pytest.mark.parametrize("layout", ["NHWC", "NCHW"])
def test_uint8_images_become_floats_a_batch_at_a_time_with_the_same_result(keras_data, layout):
    # fit keeps uint8 pixels uint8 and converts each batch (x / 255): the same values as
    # converting the whole set first, so the same weights after training
    x, _, labels = keras_data
    x_uint8 = (np.clip(x, 0, 1) * 255).astype(np.uint8)  # (N, H, W, 1)
    if layout == "NCHW":
        x_uint8 = np.ascontiguousarray(x_uint8.transpose(0, 3, 1, 2))  # -> (N, 1, H, W)
    as_float = x_uint8.astype(np.float32) / np.float32(255)
    trained = []
    for data in (x_uint8, as_float):
        model = _tutorial_model(softmax=False)
        model.compile(optimizer="adam", loss="sparse_categorical_crossentropy",
                      metrics=["accuracy"])
        model.fit(data, labels, batch_size=64, epochs=2, verbose=0, validation_split=0.1,
                  precision="fp32")
        trained.append(model.state_dict())
    for name, value in trained[0].items():
        assert torch.equal(value, trained[1][name]), name
    model = _tutorial_model(softmax=False)
    batches = model._batches(x_uint8, labels, 64, shuffle=True)
    assert batches.x.dtype == torch.uint8 and batches.x.shape[1:] == (1, 8, 8)  # stored uint8
    first, _ = next(iter(batches))
    assert first.dtype == torch.float32 and 0.0 <= first.min() and first.max() <= 1.0
    assert first.max() > 0.5  # scaled to 0..1, not left at 0..255 nor scaled twice


def test_tensor_batches_transform_each_batch():
    from cnnkit.data.loader import TensorBatches

    x = torch.arange(10, dtype=torch.uint8).view(10, 1)
    seen = []

    def double(b):
        seen.append(len(b))
        return b.float() * 2

    batches = TensorBatches(x, None, batch_size=4, transform=double)
    assert torch.equal(torch.cat([b for b, _ in batches]), torch.arange(10.0).view(10, 1) * 2)
    assert seen == [4, 4, 2]  # one call per batch, as it is taken
    with pytest.raises(TypeError, match="transform must be a function"):
        TensorBatches(x, None, batch_size=4, transform="scale")


def test_predict_on_uint8_equals_predict_on_the_scaled_floats(keras_data):
    x, _, _ = keras_data
    x_uint8 = (np.clip(x, 0, 1) * 255).astype(np.uint8)  # (N, H, W, 1)
    model = _tutorial_model()
    got = model.predict(x_uint8, batch_size=50)
    want = model.predict(x_uint8.astype(np.float32) / np.float32(255), batch_size=50)
    assert got.shape == (len(x), 4) and np.array_equal(got, want)
    assert not np.array_equal(got, model.predict(x_uint8.astype(np.float32)))  # really scaled
