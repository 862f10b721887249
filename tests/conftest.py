import os

# No test may reach a model hub: the reference libraries build tiny random models from configs.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

from _torchvision_compat import install as _install_torchvision_compat  # noqa: E402

_install_torchvision_compat()
