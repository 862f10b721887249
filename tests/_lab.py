"""Start `make lab`'s command (scripts/lab.sh) on a free port, wait for /api/status, stop it.

Shared by tests/test_lab.py (the course venv, as whoever runs the tests: root in CI) and
tests/test_install.py (a fresh clone, as a normal user).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import socket
import subprocess
import time
import urllib.request
from pathlib import Path

LAB_SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "lab.sh"
URL = re.compile(r"http://127\.0\.0\.1:(\d+)/lab\?token=([0-9a-f]+)")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def jupyter_dirs(base: Path) -> dict[str, str]:
    """Keep JupyterLab's config, data (notebook signatures), runtime files and workspaces out of
    the user's home."""
    return {
        "JUPYTER_CONFIG_DIR": str(base / "config"),
        "JUPYTER_DATA_DIR": str(base / "data"),
        "JUPYTER_RUNTIME_DIR": str(base / "runtime"),
        "JUPYTERLAB_WORKSPACES_DIR": str(base / "workspaces"),
        "JUPYTERLAB_SETTINGS_DIR": str(base / "settings"),
        "IPYTHONDIR": str(base / "ipython"),
    }


def server_argv(session: int) -> list[str]:
    """The command line of the JupyterLab process in this session (behind make, runuser, ...)."""
    for d in Path("/proc").iterdir():
        try:
            if d.name.isdigit() and os.getsid(int(d.name)) == session:
                argv = (d / "cmdline").read_bytes().decode(errors="replace").split("\0")
                if any(a.endswith("jupyter-lab") for a in argv):
                    return argv
        except OSError:
            pass
    raise AssertionError("no jupyter-lab process found")


@contextlib.contextmanager
def serving(cmd: list[str], env: dict[str, str], cwd: Path, log: Path, timeout: float = 90):
    """Run cmd (which must start `scripts/lab.sh ... --port=P`); once http://127.0.0.1:P/api/status
    answers with the token the server printed, yield a dict: status (the answer), token, log (the
    output so far) and argv (the server's own command line); then stop it."""
    with open(log, "wb") as logf:
        proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=logf, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + timeout
        while True:
            text = log.read_text(errors="replace")
            if proc.poll() is not None:
                raise AssertionError(f"`{' '.join(cmd)}` exited with code {proc.returncode}:\n{text[-3000:]}")
            m = URL.search(text)
            if m:
                req = urllib.request.Request(f"http://127.0.0.1:{m[1]}/api/status",
                                             headers={"Authorization": f"token {m[2]}"})
                try:
                    with urllib.request.urlopen(req, timeout=2) as r:
                        status = json.load(r)
                except OSError:
                    status = None
                if status is not None:
                    yield {"status": status, "token": m[2], "log": text, "argv": server_argv(proc.pid)}
                    return
            if time.monotonic() > deadline:
                raise AssertionError(f"no answer from /api/status within {timeout} s:\n{text[-3000:]}")
            time.sleep(0.5)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
