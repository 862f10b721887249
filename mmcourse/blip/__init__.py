"""The BLIP topic (notebook 05): one model that retrieves, matches and captions.

The model, in BLIP's parts:

- :mod:`.tokenizer`: ``BlipTokenizer``, the course's word tokenizer with [CLS], [SEP], [ENC], [DEC], [PAD].
- :mod:`.text`: ``TextConfig`` and ``TextTransformer``, the BERT-style text side in three modes,
  its attention masks and the encoder-decoder parameter sharing.
- :mod:`.model`: ``BlipConfig`` and ``BLIP`` (ViT + text transformer + ITC, ITM and LM heads),
  ``sharing_counts``.
- :mod:`.losses`: ITC (CLIP's loss, BLIP's temperature), ITM and label-smoothed LM losses.
- :mod:`.negatives`: ITM's hard-negative sampler with the same-content mask, and what fails without it.
- :mod:`.decode`: greedy, beam and nucleus decoding (``generate``).
- :mod:`.capfilt`: ``caption`` and ``filter``, the two halves of CapFilt.
- :mod:`.convert`: ``from_hf_blip_itm`` and ``from_hf_blip_captioner`` (transformers' BLIP weights).

The course's experiments on ShapesWorld:

- :mod:`.captions`: the scenes and their captions; reading a caption back into objects, judging
  it word by word, one-word-changed captions.
- :mod:`.train`: the model's size (``shapes_blip_config``), the batches and ``train_blip``.
- :mod:`.evaluate`: captions, one-word-change matching (ITM against ITC), retrieval with and
  without ITM re-ranking, zero-shot, the LM loss read apart, and ``protocol_metrics``, every
  shipped number with its standard error.
- :mod:`.bootstrap`: CapFilt end to end (``capfilt_experiment``).
- :mod:`.checkpoints`: the shipped ``blip_shapes`` (``RECIPE``, ``TARGETS``, ``EVALUATORS``, ``load_blip``).
- :mod:`.widgets`: the notebook's caption and matching explorers.
"""

from .capfilt import caption, filter  # noqa: A004 (BLIP's name for the CapFilt filter)
from .convert import from_hf_blip_captioner, from_hf_blip_itm
from .decode import beam_search, generate, greedy_decode, nucleus_filter, nucleus_mask, nucleus_sample
from .losses import itc_loss, itm_loss, lm_loss, lm_targets
from .model import BLIP, BlipConfig, count_parameters, sharing_counts
from .negatives import hard_negative_weights, mask_failure_demo, same_content_mask, sample_hard_negatives, sample_negatives_diagonal_only
from .text import TextConfig, TextTransformer, attention_mask, mode_mask, tie_decoder_to_encoder
from .tokenizer import BlipTokenizer

__all__ = [
    "caption", "filter", "from_hf_blip_captioner", "from_hf_blip_itm", "beam_search", "generate", "greedy_decode",
    "nucleus_filter", "nucleus_mask", "nucleus_sample", "itc_loss", "itm_loss", "lm_loss", "lm_targets", "BLIP", "BlipConfig",
    "count_parameters", "sharing_counts", "hard_negative_weights", "mode_mask", "mask_failure_demo", "same_content_mask", "sample_hard_negatives",
    "sample_negatives_diagonal_only", "TextConfig", "TextTransformer", "attention_mask", "tie_decoder_to_encoder",
    "BlipTokenizer",
]
