# The README's two set-up commands. Both work on a fresh machine with only the package
# registries reachable; constraints.txt keeps torch on the local CPU wheel (2.13.0).
PIP_INSTALL = .venv/bin/pip install -q --find-links /opt/wheels -c constraints.txt

.PHONY: run test browser bench

.venv:
	python3 -m venv .venv

run: .venv
	$(PIP_INSTALL) -e .
	.venv/bin/cnnkit train --out runs/digits --overwrite

# The browser test of the web page drives Debian's chromium; install it when we can (root with
# apt-get). Without it that one test skips and says why.
browser:
	@if command -v chromium >/dev/null && command -v chromedriver >/dev/null; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		apt-get install -y -q chromium chromium-driver >/dev/null 2>&1 || \
		{ apt-get update -q >/dev/null 2>&1 && apt-get install -y -q chromium chromium-driver >/dev/null 2>&1; } || \
		echo "could not install chromium: the browser test will skip"; \
	else echo "chromium is not installed (needs root and apt-get): the browser test will skip"; fi

test: .venv browser
	$(PIP_INSTALL) -e ".[test]"
	.venv/bin/python -m pytest -q -n 2 --dist loadgroup

bench: .venv  # the seven speed benchmarks of bench/RESULTS.md, one after another (~45 min on 2 cores; bench.fashion_fast alone ~28)
	$(PIP_INSTALL) -e ".[test,bench]"
	.venv/bin/python -m bench.tutorial_mnist
	.venv/bin/python -m bench.time_to_99
	.venv/bin/python -m bench.fashion_fast
	.venv/bin/python -m bench.cifar_fast
	.venv/bin/python -m bench.serve_load --only predict
	.venv/bin/python -m bench.data_loader
	.venv/bin/python -m bench.memory
