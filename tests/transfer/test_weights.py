"""Loading weights: torchvision-named ResNet-18, run folders, modules, and the mismatch report."""
import pytest
import torch
from safetensors.torch import save_file

from cnnkit.errors import CheckpointError
from cnnkit.models import create
from cnnkit.transfer_learning import load_pretrained, transfer


def torchvision_resnet18_state_dict(num_classes=1000):
    """ResNet-18's state dict as torchvision names it, written out from its documented layout."""
    g = torch.Generator().manual_seed(0)
    sd = {}

    def conv(name, out, inp, k):
        sd[f"{name}.weight"] = torch.randn(out, inp, k, k, generator=g)

    def bn(name, c):
        sd[f"{name}.weight"] = torch.rand(c, generator=g)
        sd[f"{name}.bias"] = torch.randn(c, generator=g)
        sd[f"{name}.running_mean"] = torch.randn(c, generator=g)
        sd[f"{name}.running_var"] = torch.rand(c, generator=g) + 0.5
        sd[f"{name}.num_batches_tracked"] = torch.tensor(7)

    conv("conv1", 64, 3, 7)
    bn("bn1", 64)
    inplanes = 64
    for stage, planes in enumerate((64, 128, 256, 512), start=1):
        for block in range(2):
            prefix = f"layer{stage}.{block}"
            stride_block = block == 0 and stage > 1
            conv(f"{prefix}.conv1", planes, inplanes, 3)
            bn(f"{prefix}.bn1", planes)
            conv(f"{prefix}.conv2", planes, planes, 3)
            bn(f"{prefix}.bn2", planes)
            if stride_block:
                conv(f"{prefix}.downsample.0", planes, inplanes, 1)
                bn(f"{prefix}.downsample.1", planes)
            inplanes = planes
    sd["fc.weight"] = torch.randn(num_classes, 512, generator=g)
    sd["fc.bias"] = torch.randn(num_classes, generator=g)
    return sd


@pytest.mark.parametrize("suffix", [".pth", ".safetensors"])
def test_torchvision_resnet18_loads_with_the_head_replaced(tmp_path, suffix):
    sd = torchvision_resnet18_state_dict()
    path = tmp_path / f"resnet18{suffix}"
    if suffix == ".pth":
        torch.save({"state_dict": {f"module.{k}": v for k, v in sd.items()}}, path)
    else:
        save_file(sd, str(path))
    model = create("resnet18", num_classes=5, in_channels=3, input_size=224)
    report = load_pretrained(model, path)
    assert report.ok and not report.missing and not report.unexpected
    assert report.head == ["fc.weight", "fc.bias"]
    assert len(report.matched) == len(sd) - 2
    state = model.state_dict()
    assert all(torch.equal(state[k], sd[k]) for k in report.matched)
    assert "skipped (classifier replaced, expected): fc.weight, fc.bias" in str(report)


def test_mismatch_report_strict_raises_and_loads_nothing():
    source = create("resnet18", num_classes=5, in_channels=1, input_size=32)
    model = create("resnet18", num_classes=5, in_channels=3, input_size=32)
    sd = dict(source.state_dict())
    sd["extra.weight"] = torch.zeros(1)
    del sd["layer4.1.bn2.running_var"]
    before = model.conv1.weight.clone()
    with pytest.raises(CheckpointError) as info:
        load_pretrained(model, sd)
    text = str(info.value)
    assert "skipped: conv1.weight: shape (64, 1, 3, 3) in the source vs (64, 3, 3, 3)" in text
    assert "missing from the source (kept as initialised): layer4.1.bn2.running_var" in text
    assert "not in the model (ignored): extra.weight" in text
    assert torch.equal(model.conv1.weight, before)
    report = load_pretrained(model, sd, strict=False)
    assert torch.equal(model.conv1.weight, before)
    assert torch.equal(model.layer1[0].conv1.weight, source.layer1[0].conv1.weight)
    assert report.missing == ["layer4.1.bn2.running_var"] and report.unexpected == ["extra.weight"]


def test_same_shaped_head_loads_unless_skipped_and_key_map_renames():
    source = create("lenet5", num_classes=10, in_channels=1, input_size=32)
    model = create("lenet5", num_classes=10, in_channels=1, input_size=32)
    assert load_pretrained(model, source).head == []
    assert torch.equal(model.fc3.weight, source.fc3.weight)
    fresh = create("lenet5", num_classes=10, in_channels=1, input_size=32)
    assert load_pretrained(fresh, source, skip_head=True).head == ["fc3.weight", "fc3.bias"]
    assert not torch.equal(fresh.fc3.weight, source.fc3.weight)
    renamed = {k.replace("conv", "cv"): v for k, v in source.state_dict().items()}
    report = load_pretrained(fresh, renamed, key_map=lambda k: k.replace("cv", "conv"))
    assert report.ok
    with pytest.raises(CheckpointError, match="conv1.weight"):
        load_pretrained(fresh, renamed, skip_head=False)


def test_torch_file_with_objects_is_refused(tmp_path):
    path = tmp_path / "bad.pt"
    torch.save({"model": create("lenet5", num_classes=2, in_channels=1, input_size=32)}, path)
    with pytest.raises(CheckpointError, match="weights_only=True"):
        load_pretrained(create("lenet5", num_classes=2, in_channels=1, input_size=32), path)


def test_missing_and_unknown_files(tmp_path):
    model = create("lenet5", num_classes=2, in_channels=1, input_size=32)
    with pytest.raises(FileNotFoundError, match="do not exist"):
        load_pretrained(model, tmp_path / "none.pth")
    (tmp_path / "w.txt").write_text("x")
    with pytest.raises(CheckpointError, match="must end in .safetensors"):
        load_pretrained(model, tmp_path / "w.txt")


def test_transfer_from_a_module_source():
    source = create("resnet18", num_classes=10, in_channels=3, input_size=32)
    model = transfer(create("resnet18", num_classes=10, in_channels=3, input_size=32), 2,
                     weights=source, in_channels=1, freeze="all_but_head")
    assert model(torch.randn(2, 1, 32, 32)).shape == (2, 2)
    assert torch.equal(model.conv1.weight, source.conv1.weight.sum(1, keepdim=True))
    assert torch.equal(model.layer1[0].conv1.weight, source.layer1[0].conv1.weight)


def test_imagenet_stem_weights_into_a_small_stem_model_name_the_stem_to_use(tmp_path):
    """#18 item 11: torchvision-layout (7x7 conv1) weights into create(input_size=64)."""
    import cnnkit
    from cnnkit.errors import CheckpointError
    from cnnkit.transfer_learning import load_pretrained

    imagenet = cnnkit.models.create("resnet18", num_classes=1000, in_channels=3, input_size=224)
    path = tmp_path / "resnet18.pth"
    torch.save(imagenet.state_dict(), path)
    small = cnnkit.models.create("resnet18", num_classes=10, in_channels=3, input_size=64)
    assert small.stem == "small"
    with pytest.raises(CheckpointError, match=r"trained with stem='imagenet' \(conv1 7x7\) and the "
                       r"model has stem='small'.*create\('resnet18', \.\.\., stem='imagenet'\) "
                       r"\(CLI: --stem imagenet\)"):
        load_pretrained(small, path)
    fitted = cnnkit.models.create("resnet18", num_classes=10, in_channels=3, input_size=64,
                                  stem="imagenet")
    report = load_pretrained(fitted, path)
    assert report.ok and "conv1.weight" in report.matched
    assert torch.equal(fitted.conv1.weight, imagenet.conv1.weight)
