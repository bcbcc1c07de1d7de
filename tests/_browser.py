"""Headless Chromium for the page tests (serve's web page, the run report): where the binaries
are, the skip marker when they are not, and one driver with a throw-away profile."""
from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator

import pytest

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"

needs_chromium = pytest.mark.skipif(
    not (os.access(CHROMIUM, os.X_OK) and os.access(CHROMEDRIVER, os.X_OK)),
    reason=f"headless Chromium not found ({CHROMIUM}, {CHROMEDRIVER}); install it with "
           "apt-get install -y chromium chromium-driver")


@contextlib.contextmanager
def headless_chromium(webdriver, window: str, *, extra_flags=(), console_logs: bool = False
                      ) -> Iterator:
    """A selenium Chrome driver on headless Chromium at ``window`` ("W,H"), quit afterwards."""
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    if console_logs:
        options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    profile = tempfile.mkdtemp(prefix="cnnkit-chromium-")
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", *extra_flags, "--no-first-run",
                 "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", f"--window-size={window}", f"--user-data-dir={profile}"):
        options.add_argument(flag)
    driver = webdriver.Chrome(options=options,
                              service=webdriver.ChromeService(executable_path=CHROMEDRIVER))
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)
