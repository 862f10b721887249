"""Text-to-image on ShapesWorld (notebook 08): the course's diffusion, ViT and CLIP joined.

- :mod:`.model`: ``T2IConfig``, the pieces (``TextToImage``: autoencoder, text U-Net, frozen CLIP
  text tower, schedule), ``load_text2image`` (the shipped checkpoint) and ``world`` (its scenes).
- :mod:`.train`: stage 1, the autoencoder (``autoencoder_loss``, ``train_autoencoder``); stage 2,
  the text-conditioned denoiser (``encode_dataset``, ``text_eps_loss``, ``train_denoiser``,
  ``train_denoiser_emas``: several moving averages of the weights from one run);
  ``train_text2image`` runs both.
- :mod:`.sampling`: ``generate`` (prompts -> guided DDIM/DDPM in latent space -> pictures).
- :mod:`.prompts`: what a prompt asks for (``parse_prompt``) and seen / held-out prompt sets.
- :mod:`.judges`: shape (the shipped ViT), colour, position, size and the CLIP score.
- :mod:`.evaluate`: the protocol's measurements (``guidance_sweep``, ``choose_guidance_scale``,
  ``evaluate_text2image``) and ``load_results`` (bench/results).
- :mod:`.grounding`: ``ground_and_segment``, GLIP's box and SAM's mask on a generated picture.
- :mod:`.recipe` / :mod:`.checkpoints`: the ``text2image_shapes`` builder, its evaluator and targets.
- :mod:`.widgets`: the prompt widget (``prompt_view`` is its tested callback).

The kernels live in :mod:`mmcourse.diffusion`: ``conditioning`` (cross-attention, ``TextUNet``),
``guidance`` (classifier-free guidance), ``autoencoder``.
"""
