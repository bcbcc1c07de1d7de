"""A fixture that checks a file is a real, non-trivial PNG picture."""
from __future__ import annotations

import pytest
from PIL import Image


def _check_png(path, min_size=(100, 100)):
    assert path.is_file(), f"{path} was not written"
    with Image.open(path) as image:
        assert image.format == "PNG"
        image.load()
        assert image.size[0] >= min_size[0] and image.size[1] >= min_size[1]
        colours = image.convert("RGB").getcolors(maxcolors=1 << 16)
        assert colours is None or len(colours) > 2, "the picture is (almost) blank"


@pytest.fixture
def check_png():
    return _check_png
