"""Debian's chromium, driven by Playwright (its own browser download is never used)."""

from __future__ import annotations

import os
import shutil

from playwright.sync_api import Browser, Playwright

__all__ = ["CHROMIUM_ARGS", "chromium_path", "launch"]

CHROMIUM_ARGS = [
    # As root, Chromium's sandbox cannot start.
    *(["--no-sandbox"] if os.geteuid() == 0 else []),
    # This machine's network is closed: without these Chromium tries to reach its
    # update, sync and safe-browsing services, and logs refused connections.
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-gpu",
]


def chromium_path() -> str | None:
    """The system's chromium (installed by `make test`), or None."""
    return shutil.which("chromium") or shutil.which("chromium-browser")


def launch(playwright: Playwright) -> Browser:
    """A headless chromium."""
    executable = chromium_path()
    if executable is None:
        raise RuntimeError("chromium is not installed (`make chromium` installs it)")
    return playwright.chromium.launch(executable_path=executable, headless=True, args=CHROMIUM_ARGS)
