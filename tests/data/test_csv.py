"""load_csv: columns, label forms, root resolution, path traversal defence, row-numbered errors."""
from __future__ import annotations

import numpy as np
import pytest

from cnnkit.data.csv_source import load_csv
from cnnkit.errors import DataError


def test_reads_names_and_pixels(csv_dataset):
    data = load_csv(csv_dataset.path)
    assert data.class_names == ["bird", "fish"]
    np.testing.assert_array_equal(data.images.numpy(), csv_dataset.images["all"])
    np.testing.assert_array_equal(data.labels.numpy(), csv_dataset.labels["all"])


def test_integer_labels_other_columns_and_root(tmp_path, image_writer):
    (tmp_path / "pics").mkdir()
    for i in range(3):
        image_writer(tmp_path / "pics" / f"{i}.png", np.full((1, 6, 6), i * 50, np.uint8))
    csv_path = tmp_path / "meta" / "list.csv"
    csv_path.parent.mkdir()
    csv_path.write_text("\ufeffID,Image,Target\n1,0.png,2\n2,1.png,0\n3,2.png,2\n")
    data = load_csv(csv_path, root=tmp_path / "pics", size=3, allow_label_gaps=True)
    assert data.class_names == ["0", "1", "2"]  # class 1 unused: accepted only with the flag
    assert data.labels.tolist() == [2, 0, 2]
    assert data.input_shape == (1, 3, 3)
    assert data.images[1].unique().tolist() == [50]


def test_absolute_path_inside_root_is_allowed(csv_dataset):
    absolute = csv_dataset.path.parent / "imgs" / "0.png"
    csv_dataset.path.write_text(f"path,class\n{absolute},x\n")
    assert len(load_csv(csv_dataset.path)) == 1


@pytest.mark.parametrize("bad", ["../outside.png", "imgs/../../outside.png", "/etc/passwd"])
def test_path_traversal_refused(csv_dataset, bad):
    csv_dataset.path.write_text(f"path,label\nimgs/0.png,a\n{bad},b\n")
    with pytest.raises(DataError, match=rf"line 3 of .*labels\.csv: '{bad}' points outside"):
        load_csv(csv_dataset.path)


def test_missing_image_names_the_line(csv_dataset):
    csv_dataset.path.write_text("path,label\nimgs/0.png,a\nimgs/9.png,b\n")
    with pytest.raises(DataError, match=r"line 3 of .*: image 'imgs/9.png' not found"):
        load_csv(csv_dataset.path)


def test_column_and_cell_errors(csv_dataset):
    csv_dataset.path.write_text("picture,label\nimgs/0.png,a\n")
    with pytest.raises(DataError, match=r"no path column: its header is \['picture', 'label'\]"):
        load_csv(csv_dataset.path)
    csv_dataset.path.write_text("path,kind\nimgs/0.png,a\n")
    with pytest.raises(DataError, match="no label column"):
        load_csv(csv_dataset.path)
    csv_dataset.path.write_text("path,label\nimgs/0.png,\n")
    with pytest.raises(DataError, match="line 2 of .* has an empty 'path' or 'label' cell"):
        load_csv(csv_dataset.path)
    csv_dataset.path.write_text("path,label\n")
    with pytest.raises(DataError, match="no rows"):
        load_csv(csv_dataset.path)
    with pytest.raises(DataError, match="does not exist"):
        load_csv(csv_dataset.path.parent / "nope.csv")


def test_unreadable_image_skipped_or_strict(csv_dataset):
    (csv_dataset.path.parent / "imgs" / "1.png").write_bytes(b"garbage")
    data = load_csv(csv_dataset.path)
    assert len(data) == 3 and len(data.skipped) == 1
    with pytest.raises(DataError, match=r"1\.png"):
        load_csv(csv_dataset.path, strict=True)
