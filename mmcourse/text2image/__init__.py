"""Text-to-image on ShapesWorld (notebook 08): the course's diffusion, ViT and CLIP joined.

- :mod:`.prompts`: what a prompt asks for (``parse_prompt``) and seen / held-out prompt sets.
- :mod:`.judges`: shape (the shipped ViT), colour, position, size and the CLIP score.
- :mod:`.tasks`: data, the two training stages (autoencoder, text-conditioned latent U-Net),
  ``generate`` and the shipped model ``load_text2image``.
- :mod:`.recipe` / :mod:`.checkpoints`: the ``text2image_shapes`` builder and its targets.
- :mod:`.widgets`: the prompt widget (``prompt_view`` is its tested callback).

The kernels live in :mod:`mmcourse.diffusion`: ``conditioning`` (cross-attention, ``TextUNet``),
``guidance`` (classifier-free guidance), ``autoencoder``.
"""
