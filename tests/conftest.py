import os

import pytest
import torch

# No test may reach a model hub: the reference libraries build tiny random models from configs.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

from _torchvision_compat import install as _install_torchvision_compat  # noqa: E402

_install_torchvision_compat()


@pytest.fixture
def one_thread():
    """Tiny models: on a shared 2-core machine two torch threads mostly wait for each other.
    Modules of tiny-model tests use it with ``pytestmark = pytest.mark.usefixtures("one_thread")``."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)
