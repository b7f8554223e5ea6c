"""Open an HTML file in the system's headless Chromium and return the DOM after its scripts ran.

Debian's ``chromium`` (``apt-get install chromium``; ``.ci/run`` installs it).  Outside CI a
machine without it skips the test that needs it, saying why; in CI (``$CI`` set) it fails.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

CANDIDATES = ("chromium", "chromium-browser", "google-chrome")


def chromium() -> str:
    """The browser's path; skips (fails in CI) when there is none."""
    for name in CANDIDATES:
        if found := shutil.which(name):
            return found
    reason = "no headless Chromium on PATH (apt-get install chromium) to render the HTML report"
    if os.environ.get("CI"):
        pytest.fail(reason)
    pytest.skip(reason)


def rendered_dom(page: Path, profile: Path) -> str:
    """``chromium --headless --dump-dom`` of ``page``, given time for its scripts to draw."""
    done = subprocess.run(
        [
            chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
            f"--user-data-dir={profile}", "--virtual-time-budget=15000", "--dump-dom",
            page.resolve().as_uri(),
        ],
        capture_output=True, text=True, timeout=50,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout
