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
    # It trusted the course's notebooks first (in the Jupyter data dir of this run).
    count = len(list((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))) + len(list((ROOT / "notebooks").glob("*/[0-9][0-9]_*.ipynb")))
    assert f"{count} course notebooks trusted" in lab["log"] and (tmp_path / "data" / "nbsignatures.db").exists()
    # Headless: no browser tried; the URL to open, with its token, is printed.
    assert f"http://127.0.0.1:{port}/lab?token={lab['token']}" in lab["log"]
    assert "no display" in lab["log"] and "--no-browser" in lab["argv"]
    # --allow-root exactly when running as root (CI, containers); tests/test_install.py runs
    # the same script as a normal user.
    assert ("--allow-root" in lab["argv"]) == (os.getuid() == 0), lab["argv"]


def _prepare_lab():
    import importlib.util

    spec = importlib.util.spec_from_file_location("prepare_lab", ROOT / "scripts" / "prepare_lab.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_make_lab_trusts_every_course_notebook_and_turns_off_the_news_prompt(tmp_path, monkeypatch):
    """scripts/prepare_lab.py, which `make setup` and every `make lab` run: each notebook's
    signature is valid afterwards (the browser test shows what that changes on screen), a
    re-written notebook is signed again, and the Lab override never asks about news."""
    import json

    import nbformat
    from nbformat.sign import NotebookNotary

    monkeypatch.setenv("JUPYTER_DATA_DIR", str(tmp_path / "data"))
    prepare = _prepare_lab()
    folder = tmp_path / "notebooks"
    folder.mkdir()
    for name in ("00_welcome.ipynb", "01_diffusion_forward.ipynb"):
        (folder / name).write_bytes((ROOT / "notebooks" / name).read_bytes())
    paths = sorted(folder.glob("*.ipynb"))

    def trusted(path):
        notary = NotebookNotary()
        try:
            return notary.check_signature(nbformat.read(path, as_version=4))
        finally:
            notary.store.close()

    assert not any(trusted(p) for p in paths)  # a fresh data dir trusts nothing
    assert prepare.trust_notebooks(paths) == (2, 0)
    assert all(trusted(p) for p in paths)
    assert prepare.trust_notebooks(paths) == (0, 2)
    # `make execute` or a pull rewrites a notebook: untrusted until make lab signs it again.
    nb = nbformat.read(paths[0], as_version=4)
    nb.cells[0].source += "\n"
    nbformat.write(nb, paths[0])
    assert not trusted(paths[0])
    assert prepare.trust_notebooks(paths) == (1, 1) and trusted(paths[0])

    overrides = tmp_path / "venv" / "share" / "jupyter" / "lab" / "settings" / "overrides.json"
    overrides.parent.mkdir(parents=True)
    overrides.write_text(json.dumps({"other:plugin": {"x": 1},
                                     "@jupyterlab/apputils-extension:notification": {"doNotDisturbMode": True}}))
    assert prepare.overrides_path(tmp_path / "venv") == overrides
    prepare.install_lab_overrides(overrides)
    got = json.loads(overrides.read_text())
    assert got["other:plugin"] == {"x": 1}  # other settings kept
    assert got["@jupyterlab/apputils-extension:notification"] == {
        "doNotDisturbMode": True, "fetchNews": "false", "checkForUpdates": False}
    # The values exist in this JupyterLab's schema ("false" is the schema's "Never").
    schema = json.loads((Path(sys.prefix) / "share/jupyter/lab/schemas/@jupyterlab/apputils-extension"
                         / "notification.json").read_text())["properties"]
    assert {"const": "false", "title": "Never"} in schema["fetchNews"]["oneOf"]
    assert schema["checkForUpdates"]["type"] == "boolean"


def test_make_lab_starts_even_when_it_cannot_trust_or_write_settings(tmp_path, monkeypatch, capsys):
    """A read-only shared environment must not stop `make lab`: each step says what it skipped."""
    prepare = _prepare_lab()

    def refuse(*_a, **_k):
        raise PermissionError("read-only")

    monkeypatch.setattr(prepare, "trust_notebooks", refuse)
    monkeypatch.setattr(prepare, "install_lab_overrides", refuse)
    prepare.main([str(tmp_path)])
    out = capsys.readouterr().out
    assert "could not trust the notebooks (read-only)" in out
    assert "could not write the Lab settings (read-only)" in out
