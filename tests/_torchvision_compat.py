"""Let the reference libraries import torchvision next to the CPU build of torch.

timm, open_clip, segment-anything and parts of transformers import torchvision at import time
(for transforms). The torchvision wheel that matches torch 2.13.0 on PyPI is built for CUDA:
its compiled ops fail to load beside the CPU torch, and torchvision then stops at import because
it registers a fake kernel for ``torchvision::nms``, an op that does not exist.

When (and only when) the compiled ops cannot load, ``install()`` declares the two op schemas that
torchvision registers unconditionally, so the pure-Python parts import. The op bodies stay
missing: calling ``torchvision.ops.nms`` still fails, and nothing in the course does.

``make setup`` copies this file into the venv's site-packages as ``_mmcourse_torchvision_compat``
with a ``.pth`` file that calls ``register()`` at interpreter start-up. ``register()`` only adds an
import hook (no torch import, so start-up stays fast); the hook runs ``install()`` the first time
something imports torchvision, in scripts, the notebook kernel and the tests alike.

    python tests/_torchvision_compat.py --install   # what make setup runs, with the venv's python
"""

from __future__ import annotations

import sys

NAME = "_mmcourse_torchvision_compat"
_lib = None  # the torch.library.Library holding the schemas; it must stay alive


def install() -> None:
    """Declare torchvision's op schemas if its compiled ops cannot load (idempotent)."""
    global _lib
    import importlib.util
    from pathlib import Path

    import torch

    spec = importlib.util.find_spec("torchvision")
    if spec is None or _lib is not None or not spec.origin:
        return
    try:
        torch.ops.torchvision.nms  # noqa: B018  (declared already, by the real ops or another copy)
        return
    except (AttributeError, RuntimeError):
        pass
    so = next(Path(spec.origin).parent.glob("_C*.so"), None)
    try:
        if so is not None:
            torch.ops.load_library(str(so))
            return  # the real ops are there; nothing to do
    except OSError:
        pass
    _lib = torch.library.Library("torchvision", "DEF")
    _lib.define("nms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")
    _lib.define("qnms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")


class _Hook:
    """A meta-path finder that finds nothing: it runs install() just before torchvision loads."""

    mmcourse_torchvision_hook = True

    def find_spec(self, name, path=None, target=None):
        if name == "torchvision":
            sys.meta_path[:] = [f for f in sys.meta_path if f is not self]
            try:
                install()
            except Exception as e:  # never break the import itself; torchvision reports its own error
                import warnings

                warnings.warn(f"mmcourse torchvision compatibility hook failed: {e!r}", stacklevel=2)
        return None


def register() -> None:
    """Run install() when torchvision is first imported (at once if it already is)."""
    if "torchvision" in sys.modules:
        install()
    elif not any(getattr(f, "mmcourse_torchvision_hook", False) for f in sys.meta_path):
        sys.meta_path.insert(0, _Hook())


def install_into_site_packages() -> None:
    """Copy this file into the running interpreter's site-packages with a .pth that registers it."""
    import shutil
    import sysconfig
    from pathlib import Path

    site = Path(sysconfig.get_paths()["purelib"])
    shutil.copyfile(__file__, site / f"{NAME}.py")
    (site / f"{NAME}.pth").write_text(f"import {NAME}; {NAME}.register()\n")
    print(f"torchvision compatibility hook: {site / (NAME + '.pth')}")


if __name__ == "__main__":
    if sys.argv[1:] != ["--install"]:
        sys.exit("usage: python tests/_torchvision_compat.py --install")
    install_into_site_packages()
