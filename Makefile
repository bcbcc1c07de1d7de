# The README's two set-up commands. Both work on a fresh machine with only the package
# registries reachable; constraints.txt keeps torch on the local CPU wheel (2.13.0).
PIP_INSTALL = .venv/bin/pip install -q --find-links /opt/wheels -c constraints.txt

.PHONY: run test bench

.venv:
	python3 -m venv .venv

run: .venv
	$(PIP_INSTALL) -e .
	.venv/bin/cnnkit train --out runs/digits --overwrite

test: .venv
	$(PIP_INSTALL) -e ".[test]"
	.venv/bin/python -m pytest -q -n 2

bench: .venv
	$(PIP_INSTALL) -e ".[test,bench]"
	.venv/bin/python -m bench.tutorial_mnist
