"""Print pip's configured package sources and constraints as uv flags, one token per line.

uv does not read pip's configuration files; `make setup` (scripts/setup.sh) and
tests/test_install.py pass these flags so that uv looks where pip looks (here: the local wheel
directory with the CPU torch, the local indexes, and the machine-wide constraints), weighing every
index as pip does (--index-strategy unsafe-best-match). Run with any Python that has pip.
"""

import shlex
import subprocess
import sys

FLAGS = {"find-links": "--find-links", "extra-index-url": "--extra-index-url",
         "index-url": "--index-url", "constraint": "--constraint"}


def uv_flags(python=sys.executable):
    out = subprocess.run([python, "-m", "pip", "config", "list"], capture_output=True, text=True).stdout
    flags = []
    for line in out.splitlines():
        key, _, value = line.partition("=")
        opt = FLAGS.get(key.rsplit(".", 1)[-1])
        if opt and value:
            for v in shlex.split(value)[0].split():
                if (opt, v) not in zip(flags[::2], flags[1::2]):
                    flags += [opt, v]
    return flags + ["--index-strategy", "unsafe-best-match"]


if __name__ == "__main__":
    print("\n".join(uv_flags()))
