"""A tiny trained classifier run (1 epoch on the built-in 8x8 digits) and its report."""
from __future__ import annotations

import contextlib
import io

import pytest

from cnnkit.cli import main


def run_cli(*argv) -> tuple[int, str, str]:
    """Run ``cnnkit ARGV`` in this process; return (exit code, stdout, stderr)."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main([str(a) for a in argv])
    return code, out.getvalue(), err.getvalue()


@pytest.fixture(scope="session")
def cli():
    """``cli("report", RUN)``: run the CLI in this process -> (exit code, stdout, stderr)."""
    return run_cli


@pytest.fixture(scope="session")
def digits_run(tmp_path_factory, cli):
    """A classifier trained for one epoch on ``digits`` (about 2 s)."""
    run = tmp_path_factory.mktemp("report") / "digits"
    code, _, err = cli("train", "--epochs", 1, "--device", "cpu", "--out", run, "--no-progress")
    assert code == 0, err
    return run


@pytest.fixture(scope="session")
def digits_report(digits_run, cli):
    """``cnnkit report`` of :func:`digits_run`: the path of RUN/report.html."""
    code, out, err = cli("report", digits_run)
    assert code == 0, err
    return digits_run / "report.html"
