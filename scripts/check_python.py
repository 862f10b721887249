"""Is this interpreter one the course supports, and can it make a virtual environment?

Run by `make setup` with $(PYTHON), before anything is downloaded. Prints one line saying
what to install and exits 1 when the answer is no. Written for any Python 3 (no f-strings),
since its job is to explain an old interpreter rather than crash on it.

    python3 scripts/check_python.py [--requires ">=3.10,<3.14"]
"""

import os
import platform
import re
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def requires_python(path=os.path.join(ROOT, "pyproject.toml")):
    """The bounds of pyproject.toml's requires-python, e.g. ">=3.10,<3.14" -> ((3, 10), (3, 14))."""
    with open(path) as f:
        text = f.read()
    spec = re.search(r'^requires-python\s*=\s*"([^"]+)"', text, re.M).group(1)
    return parse(spec)


def parse(spec):
    lo = re.search(r">=\s*(\d+)\.(\d+)", spec)
    hi = re.search(r"<\s*(\d+)\.(\d+)", spec)
    if not (lo and hi):
        raise ValueError("requires-python must read '>=3.X,<3.Y', got %r" % spec)
    return (int(lo.group(1)), int(lo.group(2))), (int(hi.group(1)), int(hi.group(2)))


def problem(lo, hi, version=None):
    """One line saying what is wrong with this interpreter and what to install, or None."""
    version = tuple(version or sys.version_info[:2])
    exe = sys.executable or "python"
    newest = (hi[0], hi[1] - 1)
    supported = "%d.%d-%d.%d" % (lo + newest)
    here = "%s is Python %d.%d" % (exe, version[0], version[1])
    if platform.python_implementation() != "CPython":
        return "mmcourse needs CPython %s; %s (%s)." % (supported, exe, platform.python_implementation())
    if not (lo <= version < hi):
        return ("mmcourse needs Python %s, but %s: install a supported Python (Debian 12's python3, "
                "`pyenv install 3.12`, python.org, ...) and run `make setup PYTHON=/path/to/python3.x`."
                % (supported, here))
    try:
        import venv  # noqa: F401
        import ensurepip  # noqa: F401
    except ImportError:
        pkg = "python%d.%d-venv" % version
        return ("%s but cannot make a virtual environment (no venv/ensurepip): install it, "
                "on Debian/Ubuntu with `sudo apt install %s`, then run `make setup` again." % (here, pkg))
    return None


def main(argv):
    if len(argv) == 3 and argv[1] == "--requires":
        lo, hi = parse(argv[2])
    else:
        lo, hi = requires_python()
    msg = problem(lo, hi)
    if msg:
        sys.stderr.write(msg + "\n")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
