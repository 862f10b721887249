"""Exercise checkers: ``check_<name>(fn)`` runs a learner's function next to the reference.

Each checker tries several inputs (edge cases first, then random ones) and prints a specific
verdict: which input, what was expected (shape, dtype, values) and what came back. It returns a
Verdict (truthy when every case passed), so a teacher can grade a notebook automatically.

A function that still raises ``NotImplementedError`` (the student version's placeholder) is not
a wrong answer: the checker prints a hint and lets the error stop the notebook there.
"""

from .core import Case, Verdict, check
from .basics import check_box_from_mask
from .vit import check_scaled_dot_product_attention
from .clip import check_build_zero_shot_weights, check_clip_loss  # noqa: F401
from .diffusion import check_add_noise, check_ddpm_step, check_diffusion_loss  # noqa: F401

__all__ = ["Case", "Verdict", "check", "check_box_from_mask"]
