"""Installs, as a newcomer meets them (marker `install`: `make test-install`, a step of .ci/run).

- Every supported Python found on the machine resolves `-c constraints.txt -e ".[lab,test]"`
  (a dry run: package metadata only; torch's CUDA stack is overridden away, as the CPU build
  that `make setup` installs has none, and the test checks that no large wheel was fetched).
- A fresh clone, a normal user, Debian's /usr/bin/python3: `make setup` completes, the course
  imports with the CPU torch, and `make lab` serves.
- Interpreters outside the supported range, or without venv/ensurepip, get one clear line.

Cost, measured on the course machine (2 cores shared with other jobs, so upper bounds): the five
dry runs 5-12 s each (about 50 s with pytest's start), the one-line checks under 2 s together, the
fresh-clone install with `make lab` 70 s with a warm download cache for the user, 3.5 min cold.
The whole `make test-install` took 108 s (warm) here.
"""

from __future__ import annotations

import glob
import os
import pwd
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
from _lab import free_port, jupyter_dirs, serving

pytestmark = pytest.mark.install

ROOT = Path(__file__).resolve().parents[1]
CHECK = ROOT / "scripts" / "check_python.py"
# What torch 2.13.0 from PyPI requires on Linux for CUDA; none of it is in the CPU build.
CUDA_STACK = ["triton", "cuda-bindings", "cuda-toolkit"] + [f"nvidia-{n}" for n in (
    "cublas", "cuda-cupti", "cuda-nvrtc", "cuda-runtime", "cudnn-cu13", "cufft", "cufile", "curand",
    "cusolver", "cusparse", "cusparselt-cu13", "nccl-cu13", "nvjitlink", "nvshmem-cu13", "nvtx")]
NO_WHEELS_MB = 100  # a cache holding any wheel of torch's CUDA stack would be far larger
USER = "mmcourse-learner"


def interpreters() -> list[str]:
    """Debian's python3 and every pyenv CPython (MMCOURSE_TEST_PYTHONS="a b" overrides)."""
    if os.environ.get("MMCOURSE_TEST_PYTHONS"):
        return os.environ["MMCOURSE_TEST_PYTHONS"].split()
    pyenv = os.environ.get("PYENV_ROOT", os.path.expanduser("~/.pyenv"))
    found = ["/usr/bin/python3"] + sorted(glob.glob(f"{pyenv}/versions/[0-9]*/bin/python"))
    return [p for p in found if os.path.exists(p)]


def supported(python: str) -> bool:
    return subprocess.run([python, str(CHECK)], capture_output=True).returncode == 0


def uv() -> str:
    found = shutil.which("uv") or next((str(p) for p in [Path(sys.prefix) / "bin" / "uv"] if p.exists()), None)
    if found is None:
        pytest.fail("no uv: `make setup` installs it into the venv (or `pip install uv`)", pytrace=False)
    return found


SUPPORTED = [p for p in interpreters() if supported(p)]
UNSUPPORTED = [p for p in interpreters() if not supported(p)]


def version(python: str) -> str:
    return subprocess.run([python, "-c", "import sys; print('%d.%d.%d' % sys.version_info[:3])"],
                          capture_output=True, text=True).stdout.strip()


def test_the_machine_offers_every_supported_minor_version():
    """CI must try each of them; elsewhere a missing one is reported, not failed."""
    minors = {version(p).rsplit(".", 1)[0] for p in SUPPORTED}
    missing = sorted({"3.10", "3.11", "3.12", "3.13"} - minors)
    if missing and not os.environ.get("CI"):
        pytest.skip(f"Python {', '.join(missing)} not found (pyenv install {missing[0]}, or MMCOURSE_TEST_PYTHONS=...)")
    assert not missing, f"Python {missing} not found among {interpreters()}"


@pytest.mark.parametrize("python", SUPPORTED)
def test_constraints_resolve_on(python, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("dry")
    env = dict(os.environ, UV_CACHE_DIR=str(tmp / "cache"))
    subprocess.run([uv(), "venv", "-q", "--python", python, str(tmp / "venv")], check=True, env=env)
    (tmp / "no-cuda.txt").write_text("".join(f"{n} ; sys_platform == 'never'\n" for n in CUDA_STACK))
    flags = subprocess.run([sys.executable, str(ROOT / "scripts" / "uv_flags.py")], capture_output=True,
                           text=True, check=True).stdout.split()
    r = subprocess.run([uv(), "pip", "install", "--dry-run", "--python", str(tmp / "venv" / "bin" / "python"),
                        *flags, "-c", "constraints.txt", "--override", str(tmp / "no-cuda.txt"), "-e", ".[lab,test]"],
                       cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-4000:]
    plan = dict(re.findall(r"^ \+ ([A-Za-z0-9_.-]+)==(\S+)", r.stderr + r.stdout, re.M))
    assert plan.get("torch", "").startswith("2.13.0"), plan.get("torch")
    assert {"jupyterlab", "timm", "open-clip-torch", "transformers"} <= set(plan)
    assert not [n for n in plan if re.match(r"(nvidia-|cuda-|triton)", n)], "torch's CUDA stack in the plan"
    if version(python).startswith("3.11."):
        assert plan["torch"] == "2.13.0+cpu", "the local CPU wheel should win on CPython 3.11"
    cache_mb = sum(f.stat().st_size for f in (tmp / "cache").rglob("*") if f.is_file()) / 2**20
    assert cache_mb < NO_WHEELS_MB, f"the dry run fetched {cache_mb:.0f} MB: wheels, not just metadata"


@pytest.mark.parametrize("python", UNSUPPORTED)
def test_an_unsupported_python_gets_one_line_before_any_download(python, tmp_path):
    r = subprocess.run(["bash", "scripts/setup.sh"], cwd=ROOT, capture_output=True, text=True,
                       env=dict(os.environ, PYTHON=python, VENV=str(tmp_path / "venv")))
    assert r.returncode != 0 and not (tmp_path / "venv").exists()
    (line,) = r.stderr.strip().splitlines()
    assert "needs Python 3.10-3.13" in line and "PYTHON=" in line, line


def test_a_python_newer_than_the_range_gets_one_line():
    r = subprocess.run([sys.executable, str(CHECK), "--requires", ">=3.8,<3.10"], capture_output=True, text=True)
    assert r.returncode == 1 and r.stderr.count("\n") == 1 and "needs Python 3.8-3.9" in r.stderr


def test_a_python_without_ensurepip_gets_one_line_naming_the_debian_package(tmp_path):
    (tmp_path / "ensurepip.py").write_text("raise ImportError('No module named ensurepip')\n")
    r = subprocess.run([sys.executable, str(CHECK)], capture_output=True, text=True,
                       env=dict(os.environ, PYTHONPATH=str(tmp_path)))
    minor = "%d.%d" % sys.version_info[:2]
    assert r.returncode == 1 and r.stderr.count("\n") == 1
    assert f"apt install python{minor}-venv" in r.stderr


# --- a real install ----------------------------------------------------------------------------
def as_user(tmp: Path) -> tuple[list[str], dict[str, str]]:
    """Command prefix and environment for a normal user: this one, or (as root) USER."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("PYENV", "VIRTUAL_ENV", "UV_", "PIP_CACHE", "JUPYTER", "XDG_", "MAKE"))}
    env.update(PATH="/usr/local/bin:/usr/bin:/bin", **jupyter_dirs(tmp / "jupyter"))
    if os.getuid() != 0:
        return [], env
    if subprocess.run(["id", USER], capture_output=True).returncode != 0:
        subprocess.run([shutil.which("useradd") or "/usr/sbin/useradd", "--create-home", "--shell", "/bin/bash", USER], check=True)
    home = pwd.getpwnam(USER).pw_dir
    env.update(HOME=home, USER=USER, LOGNAME=USER)
    return [shutil.which("runuser") or "/usr/sbin/runuser", "-u", USER, "--"], env


@pytest.fixture
def shared_tmp():
    """A temporary directory another user can reach (pytest's own lives under a 0700 directory)."""
    d = Path(tempfile.mkdtemp(prefix="mmcourse-install-"))
    d.chmod(0o755)
    yield d
    shutil.rmtree(d, ignore_errors=True)


def test_fresh_clone_sets_up_and_serves_as_a_normal_user_with_debians_python(shared_tmp):
    tmp_path = shared_tmp
    clone = tmp_path / "mmcourse"
    subprocess.run(["git", "clone", "-q", str(ROOT), str(clone)], check=True)
    prefix, env = as_user(tmp_path)
    if prefix:
        subprocess.run(["chown", "-R", f"{USER}:", str(tmp_path)], check=True)
    log = tmp_path / "setup.log"
    with open(log, "wb") as f:
        r = subprocess.run([*prefix, "make", "setup", "PYTHON=/usr/bin/python3"], cwd=clone, env=env,
                           stdout=f, stderr=subprocess.STDOUT, timeout=1200)
    assert r.returncode == 0, log.read_text()[-4000:]
    probe = "import mmcourse, torch, sys; print(sys.version.split()[0], torch.__version__, torch.version.cuda)"
    out = subprocess.run([*prefix, ".venv/bin/python", "-c", probe], cwd=clone, env=env, capture_output=True,
                         text=True, check=True).stdout.split()
    assert out[0] == "3.11.2" or not Path("/etc/debian_version").exists(), out
    assert out[2] == "None", f"torch {out[1]} is a CUDA build"
    port = free_port()
    cmd = [*prefix, "make", "lab", f"LAB_ARGS=--ip=127.0.0.1 --port={port} --ServerApp.port_retries=0"]
    with serving(cmd, env, clone, tmp_path / "lab.log", timeout=180) as lab:
        assert lab["status"]["started"]
        assert "--allow-root" not in lab["argv"], lab["argv"]
        assert f"http://127.0.0.1:{port}/lab?token={lab['token']}" in lab["log"]
