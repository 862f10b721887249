"""mmcourse: the kernels behind an interactive course on diffusion, ViT, CLIP, BLIP, SAM and GLIP.

Each topic lives in its own module (``mmcourse.diffusion``, ``mmcourse.vit``, ...); shared
basics are ``mmcourse.nn`` (attention, MLP, transformer block), ``mmcourse.train`` (a seeded
training loop), ``mmcourse.data`` (ShapesWorld and the 8x8 digits), ``mmcourse.weights``
(the checkpoint registry), ``mmcourse.boxes`` (box formats, IoU, NMS, focal loss: torchvision.ops'
semantics), ``mmcourse.protocol`` (which draws train, choose and report), ``mmcourse.viz`` (plots
and widgets) and ``mmcourse.checks`` (exercise checkers).
"""

__version__ = "0.1.0"
