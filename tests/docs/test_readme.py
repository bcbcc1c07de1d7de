"""The README is the contract: every ```python block in it runs as written, and every print whose
comment starts with ``# ->`` prints what the comment promises.

A promise is compared with the printed text, any run of whitespace (newlines too) as one space; ``...`` in a promise stands
for any text (as doctest's ELLIPSIS), so ``# -> test accuracy 0.9...`` pins the start only.
Comments without ``->`` are prose and not checked.
"""
from __future__ import annotations

import builtins
import io
import re
import sys
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[2] / "README.md"
BLOCKS = re.findall(r"```python\n(.*?)```", README.read_text(encoding="utf-8"), flags=re.S)
PROMISE = re.compile(r"^\s*print\(.*#\s*->\s?(?P<promise>.*?)\s*$")


def promises(block: str) -> dict[int, str]:
    """Line number (1-based, in the block) -> the printed text its ``# ->`` comment promises."""
    found = {}
    for number, line in enumerate(block.splitlines(), start=1):
        match = PROMISE.match(line)
        if match:
            found[number] = match["promise"]
    return found


def matches(promise: str, printed: str) -> bool:
    """``printed`` equals ``promise``, where each ``...`` in the promise matches any text."""
    def words(text: str) -> str:  # runs of spaces and newlines compare as one space
        return " ".join(text.split())

    pattern = ".*".join(re.escape(words(part)) for part in promise.split("..."))
    return re.fullmatch(pattern, words(printed), flags=re.S) is not None


def run_block(block: str, name: str) -> dict[int, str]:
    """Execute ``block``; what each of its lines printed (line number -> text)."""
    printed: dict[int, str] = {}

    def recording_print(*args, **kwargs):
        frame = sys._getframe(1)
        buffer = io.StringIO()
        builtins.print(*args, **{**kwargs, "file": buffer})
        builtins.print(*args, **kwargs)
        if frame.f_code.co_filename == name:
            printed[frame.f_lineno] = printed.get(frame.f_lineno, "") + buffer.getvalue()

    exec(compile(block, name, "exec"), {"print": recording_print})
    return printed


def test_readme_has_python_examples_with_checked_promises():
    assert len(BLOCKS) >= 5
    assert sum(len(promises(b)) for b in BLOCKS) >= 10


def test_a_broken_promise_is_caught():
    block = ('print(2 + 2)  # -> 5\nprint("a b c")  # -> a ... c\n'
             'print("x\\n  y")  # -> x y\nprint("xy")  # -> x y\n')
    printed = run_block(block, "example")
    assert [matches(p, printed[n]) for n, p in promises(block).items()] == [False, True, True,
                                                                            False]


@pytest.mark.parametrize("index", range(len(BLOCKS)))
def test_readme_python_block_runs_and_prints_what_it_promises(index, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # examples that write run folders write them here
    name = f"README.md python block {index + 1}"
    printed = run_block(BLOCKS[index], name)
    for number, promise in promises(BLOCKS[index]).items():
        line = BLOCKS[index].splitlines()[number - 1].strip()
        assert number in printed, f"{name}, line {number} printed nothing: {line}"
        assert matches(promise, printed[number]), (
            f"{name}, line {number}: {line}\n  promised: {promise}\n  printed:  "
            f"{printed[number].strip()}")
