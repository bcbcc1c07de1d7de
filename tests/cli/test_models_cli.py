"""``cnnkit models`` prints the registry's table from cnnkit.cli.zoo_catalog, without torch."""
from __future__ import annotations

import json
import subprocess
import sys
import textwrap

from cnnkit.cli import main
from cnnkit.cli.zoo_catalog import ZOO
from cnnkit.models.registry import list_models


def _entries_to_paste() -> str:
    lines = []
    for info in list_models():
        parts = textwrap.wrap(info.description, 80, drop_whitespace=False)
        lines.append(f"    ({info.name!r}, {tuple(info.default_input_size)!r},")
        last = len(parts) - 1
        lines += [f"     {part!r}" + (")," if k == last else "") for k, part in enumerate(parts)]
    return "\n".join(lines)


def test_the_catalog_is_the_registry():
    live = tuple((i.name, tuple(i.default_input_size), i.description) for i in list_models())
    assert ZOO == live, ("src/cnnkit/cli/zoo_catalog.py is out of date; set ZOO to:\n"
                         f"ZOO = (\n{_entries_to_paste()}\n)")


def test_models_lists_every_model_as_text_and_json(capsys):
    assert main(["models"]) == 0
    text = capsys.readouterr().out
    assert text.startswith("NAME") and all(name in text for name, _, _ in ZOO)
    assert "resnet18     224x224  ResNet-18 (He et al. 2015)" in text
    assert main(["models", "--json"]) == 0
    entries = json.loads(capsys.readouterr().out)
    assert [e["name"] for e in entries] == [name for name, _, _ in ZOO]
    assert entries[0]["default_input_size"] == list(ZOO[0][1])


def test_help_and_models_start_without_importing_torch():
    """#18 item 5: the parsers and the zoo table need no torch (it takes seconds to import)."""
    probe = ("import sys, contextlib, io\n"
             "from cnnkit.cli import main\n"
             "with contextlib.redirect_stdout(io.StringIO()):\n"
             "    main(['models'])\n"
             "    try:\n"
             "        main(['--help'])\n"
             "    except SystemExit:\n"
             "        pass\n"
             "print(sorted(m for m in sys.modules if m == 'torch' or m.startswith('torch.')))")
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                         check=True, timeout=120).stdout
    assert out.strip() == "[]", out
