import os

import pytest
import torch

# No test may reach a model hub: the reference libraries build tiny random models from configs.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

# torchvision beside the CPU torch: the hook `make setup` installs into the venv (the same one
# the notebook kernel uses); for a VENV= made otherwise, the same file registers it from here.
try:
    import _mmcourse_torchvision_compat as _torchvision_compat
except ImportError:
    import _torchvision_compat
_torchvision_compat.register()


@pytest.fixture
def one_thread():
    """Tiny models: on a shared 2-core machine two torch threads mostly wait for each other.
    Modules of tiny-model tests use it with ``pytestmark = pytest.mark.usefixtures("one_thread")``."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


# The browser tests' fixtures (one JupyterLab and one Chromium per session, shared by every
# tests/test_browser*.py); they start nothing until a browser test asks for them.
from _browser import browser, chromium, lab, page  # noqa: E402,F401
