"""``cnnkit report RUN``: the sections hold the run's real values, strings are escaped, task runs
work, and user errors exit with code 2."""
from __future__ import annotations

import base64
import io
import json
import re
import shutil
from html.parser import HTMLParser

import pytest
from PIL import Image

from cnnkit.report import write_report
from cnnkit.run import load_run
from cnnkit.run.evaluate import evaluate_run

CLASSIFIER_SECTIONS = ["config", "summary", "results", "curves", "evaluation", "confusion",
                       "per-class", "mistakes", "filters", "feature-maps"]


class _Page(HTMLParser):
    """The section ids, the <img> sources and the text of each section of a report."""

    def __init__(self, text: str):
        super().__init__()
        self.sections: dict[str, str] = {}
        self.images: dict[str, list[str]] = {}
        self.tags: set[str] = set()
        self._current: str | None = None
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        self.tags.add(tag)
        if tag == "section":
            self._current = attrs["id"]
            self.sections[self._current] = ""
            self.images[self._current] = []
        elif tag == "img" and self._current:
            self.images[self._current].append(attrs["src"])

    def handle_endtag(self, tag):
        if tag == "section":
            self._current = None

    def handle_data(self, data):
        if self._current:
            self.sections[self._current] += data


def _png(src: str) -> Image.Image:
    prefix = "data:image/png;base64,"
    assert src.startswith(prefix), src[:40]
    picture = Image.open(io.BytesIO(base64.b64decode(src[len(prefix):])))
    assert picture.format == "PNG" and min(picture.size) > 50
    return picture


def test_every_section_holds_the_runs_own_values(digits_run, digits_report):
    page = _Page(digits_report.read_text(encoding="utf-8"))
    assert list(page.sections) == CLASSIFIER_SECTIONS
    config = json.loads((digits_run / "config.json").read_text())
    assert config["model"] in page.sections["config"]
    assert f"lr{config['lr']}" in page.sections["config"]  # as written, not rounded
    total = next(line for line in (digits_run / "summary.txt").read_text().splitlines()
                 if line.startswith("Total params: "))
    assert total in page.sections["summary"]  # the run's own table
    results = json.loads((digits_run / "results.json").read_text())
    assert f"{results['test_accuracy']:.4f}" in page.sections["results"]
    report = evaluate_run(load_run(digits_run), "digits")
    assert f"{report.accuracy:.4f}" in page.sections["evaluation"]
    assert f"{report.loss:.4f}" in page.sections["evaluation"]
    per_class = page.sections["per-class"]
    for name, f1, support in zip(report.class_names, report.classes.f1, report.classes.support):
        assert re.search(rf"{name}{report.classes.precision[int(name)]:.4f}"
                         rf"{report.classes.recall[int(name)]:.4f}{f1:.4f}{support}", per_class)
    assert "macro average" in per_class
    for key in ("curves", "confusion", "mistakes", "filters", "feature-maps"):
        assert len(page.images[key]) == 1, key
        _png(page.images[key][0])
    assert "true class" in page.sections["feature-maps"]
    assert "script" not in page.tags  # a static page: no JavaScript, nothing fetched
    text = digits_report.read_text(encoding="utf-8")
    assert "http://" not in text and "https://" not in text


def test_class_names_and_config_values_are_escaped(colour_squares, cli, tmp_path):
    data = colour_squares(tmp_path / "data", size=12, per_class=6)
    evil = "<script>alert(1)</script>"
    (data / "red").rename(data / "<script>alert(1)<")
    (data / "green").rename(data / 'a&b "q"')
    run = tmp_path / "run"
    code, _, err = cli("train", "--data", data, "--epochs", 1, "--val-split", 0.2, "--device",
                       "cpu", "--out", run, "--no-progress", "--batch-size", 8)
    assert code == 0, err
    assert "<script>alert(1)<" in load_run(run).class_names
    text = write_report(run, tmp_path / "page.html", split="val").read_text(encoding="utf-8")
    page = _Page(text)
    assert "script" not in page.tags and "<script" not in text
    assert "&lt;script&gt;alert(1)&lt;" in text and "a&amp;b &quot;q&quot;" in text
    assert "<script>alert(1)<" in page.sections["per-class"]  # shown as text
    assert evil not in text


@pytest.fixture(scope="module")
def localize_run(tmp_path_factory, cli):
    root = tmp_path_factory.mktemp("localize")
    code, _, err = cli("data", "make", "mnist-localize", root / "data", "--source", "builtin",
                       "--train", 16, "--val", 4, "--test", 4)
    assert code == 0, err
    code, _, err = cli("train", "--data", root / "data", "--epochs", 1, "--out", root / "run",
                       "--no-progress", "--device", "cpu")
    assert code == 0, err
    return root / "run"


def test_a_localisation_run_reports_its_task_metrics_and_skips_the_classifier_parts(
        localize_run, cli, tmp_path):
    code, out, err = cli("report", localize_run, "--out", tmp_path / "r.html")
    assert code == 0, err
    assert out.strip() == str(tmp_path / "r.html")
    page = _Page((tmp_path / "r.html").read_text(encoding="utf-8"))
    assert {"config", "summary", "results", "curves", "evaluation", "samples"} <= set(page.sections)
    code, out, _ = cli("evaluate", localize_run, "--json")
    metrics = json.loads(out)
    for key in ("accuracy", "mean_iou", "iou50", "loss"):
        assert f"{key}{metrics[key]:.4f}" in page.sections["evaluation"], key
    assert "for classifiers" in page.sections["confusion"] and not page.images["confusion"]
    assert "for classifiers" in page.sections["mistakes"] and not page.images["mistakes"]
    for key in ("curves", "samples", "filters", "feature-maps"):
        _png(page.images[key][0])


def test_user_errors_exit_with_code_2_and_one_line(digits_run, cli, tmp_path):
    code, _, err = cli("report", tmp_path / "nowhere")
    assert code == 2 and "does not exist" in err and "Traceback" not in err
    code, _, err = cli("report", digits_run, "--out", tmp_path / "report.txt")
    assert code == 2 and "must end in .html" in err
    code, _, err = cli("report", digits_run, "--data", tmp_path / "missing-data")
    assert code == 2 and "Traceback" not in err
    assert not (tmp_path / "report.txt").exists()


def test_a_run_without_its_dataset_needs_data(digits_run, cli, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(digits_run, run, ignore=shutil.ignore_patterns("report.html"))
    config = json.loads((run / "config.json").read_text())
    (run / "config.json").write_text(json.dumps({**config, "data": None}))
    code, _, err = cli("report", run)
    assert code == 2 and "give data= (--data)" in err and "Traceback" not in err
    assert not (run / "report.html").exists()
