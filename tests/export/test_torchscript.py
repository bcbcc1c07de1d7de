"""TorchScript and torch.export files: raw pixels in, the same logits as the eager model out."""
import pytest
import torch

import cnnkit
from cnnkit.export import export, export_program, export_torchscript


def _expected_logits(run_dir, pixels):
    loaded = cnnkit.load(run_dir)
    with torch.no_grad():
        return loaded.model(loaded.normalization.apply(pixels))


def test_torchscript_round_trip_matches_eager(run_dir, tmp_path):
    path = export_torchscript(run_dir, tmp_path / "m.pt")
    pixels = torch.randint(0, 256, (6, 1, 8, 8), dtype=torch.uint8)
    reloaded = torch.jit.load(str(path))
    torch.testing.assert_close(reloaded(pixels), _expected_logits(run_dir, pixels),
                               rtol=1e-4, atol=1e-5)


def test_torch_export_round_trip_with_dynamic_batch(run_dir, tmp_path):
    path = export_program(run_dir, tmp_path / "m.pt2")
    module = torch.export.load(str(path)).module()
    for n in (1, 11):
        pixels = torch.randint(0, 256, (n, 1, 8, 8), dtype=torch.uint8)
        torch.testing.assert_close(module(pixels), _expected_logits(run_dir, pixels),
                                   rtol=1e-4, atol=1e-5)


def test_torch_export_needs_pt2_suffix(run_dir, tmp_path):
    with pytest.raises(ValueError, match=r"must end in \.pt2"):
        export_program(run_dir, tmp_path / "m.pt")
    assert not (tmp_path / "m.pt").exists()


def test_export_dispatches_by_format_and_rejects_unknown(run_dir, tmp_path):
    assert export(run_dir, tmp_path / "a.pt", format="torchscript").is_file()
    with pytest.raises(ValueError, match="format must be one of"):
        export(run_dir, tmp_path / "a.tflite", format="tflite")


def test_torch_export_reaches_torchvision_features_submodule_of_vgg(tmp_path):
    from cnnkit.models import create
    from cnnkit.train.run_folder import LoadedModel

    model = create("vgg11", num_classes=3, in_channels=1, input_size=32,
                   classifier_width=16).eval()
    loaded = LoadedModel(model, ["a", "b", "c"], None, (1, 32, 32), {})
    path = export_program(loaded, tmp_path / "vgg.pt2")
    pixels = torch.randint(0, 256, (2, 1, 32, 32), dtype=torch.uint8)
    with torch.no_grad():
        expected = model(pixels.float() / 255)
    torch.testing.assert_close(torch.export.load(str(path)).module()(pixels), expected,
                               rtol=1e-4, atol=1e-5)
    # The user's model is untouched: features(x) is still the embedding method.
    assert model.features(torch.zeros(1, 1, 32, 32)).shape == (1, 16)
