"""The course's own venv (the notebook kernel's): the reference libraries import, torch is the CPU build.

Each check runs in a fresh interpreter of this venv, so it sees what a learner's kernel sees: the
torchvision hook that `make setup` installs (tests/_torchvision_compat.py), not this test
session's conftest.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

PROBE = """
import json, sys
loaded_at_start = {m: m in sys.modules for m in ("_mmcourse_torchvision_compat", "torch")}
import timm
import open_clip
from transformers import ViTForImageClassification
import torch
print(json.dumps({"start": loaded_at_start, "cuda": torch.version.cuda, "torch": torch.__version__}))
"""


@pytest.mark.slow  # imports every reference library afresh (about 10 s alone)
def test_reference_libraries_import_in_a_fresh_interpreter_of_the_venv():
    r = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, f"`import timm, open_clip; from transformers import ViTForImageClassification` failed:\n{r.stderr[-3000:]}"
    got = json.loads(r.stdout.strip().splitlines()[-1])
    assert got["start"]["_mmcourse_torchvision_compat"], "the torchvision hook is not installed in this venv: run `make setup`"
    assert not got["start"]["torch"], "interpreter start-up imports torch: the hook must stay lazy"
    assert got["cuda"] is None, f"torch {got['torch']} is a CUDA build; the course installs the CPU build"
