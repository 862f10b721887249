"""`make lab` serves, as root too: the test starts scripts/lab.sh, the very command the Makefile runs."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from _lab import LAB_SCRIPT, free_port, jupyter_dirs, serving

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow  # starts JupyterLab
def test_make_lab_serves_and_prints_its_url_with_token(tmp_path):
    port = free_port()
    env = dict(os.environ, VENV=sys.prefix, **jupyter_dirs(tmp_path))
    env.pop("DISPLAY", None), env.pop("WAYLAND_DISPLAY", None), env.pop("JUPYTER_TOKEN", None)
    cmd = [str(LAB_SCRIPT), "--ip=127.0.0.1", f"--port={port}", "--ServerApp.port_retries=0"]
    with serving(cmd, env, ROOT, tmp_path / "lab.log") as lab:
        assert lab["status"]["started"], lab["status"]
    # Headless: no browser tried; the URL to open, with its token, is printed.
    assert f"http://127.0.0.1:{port}/lab?token={lab['token']}" in lab["log"]
    assert "no display" in lab["log"] and "--no-browser" in lab["argv"]
    # --allow-root exactly when running as root (CI, containers); tests/test_install.py runs
    # the same script as a normal user.
    assert ("--allow-root" in lab["argv"]) == (os.getuid() == 0), lab["argv"]
