"""mmcourse.clip against the reference implementations: open_clip's loss, transformers' CLIPModel."""

import math

import pytest
import torch

from mmcourse.clip import clip_loss
from mmcourse.clip.convert import config_from_hf_state_dict, from_hf_clip


def test_clip_loss_equals_open_clip_cliploss():
    from open_clip.loss import ClipLoss

    g = torch.Generator().manual_seed(0)
    ref = ClipLoss()
    for B, E, s in ((1, 8, 1.0), (5, 16, 14.285), (32, 24, 100.0), (64, 8, math.exp(0.3))):
        img = torch.randn(B, E, generator=g) * 3
        txt = torch.randn(B, E, generator=g) * 0.5
        scale = torch.tensor(s)
        # open_clip's loss expects unit features (the model normalises); ours normalises itself
        want = ref(torch.nn.functional.normalize(img, dim=-1), torch.nn.functional.normalize(txt, dim=-1), scale)
        got = clip_loss(img, txt, scale)
        assert abs(got.item() - want.item()) < 1e-6, (B, got.item(), want.item())


def _tiny_hf(eos_token_id: int, seed: int = 0):
    from transformers import CLIPConfig, CLIPModel

    cfg = CLIPConfig(
        text_config=dict(vocab_size=40, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=4, max_position_embeddings=12, eos_token_id=eos_token_id,
                         bos_token_id=38, pad_token_id=0),
        vision_config=dict(hidden_size=48, intermediate_size=96, num_hidden_layers=2, num_attention_heads=3,
                           image_size=32, patch_size=8),
        projection_dim=24,
    )
    torch.manual_seed(seed)
    model = CLIPModel(cfg).eval()
    with torch.no_grad():  # make LayerNorms and the scale non-trivial, so a missed copy shows
        for name, p in model.named_parameters():
            if "norm" in name:
                p.add_(0.1 * torch.randn_like(p))
        model.logit_scale.fill_(1.7)
    return model, cfg


def _inputs(eos: int):
    g = torch.Generator().manual_seed(1)
    images = torch.randn(3, 3, 32, 32, generator=g)
    ids = torch.randint(1, 37, (3, 12), generator=g)
    ids[:, 0] = 38
    lengths = [4, 12, 7]  # end token at positions 3, 11, 6; zero padding after it
    for i, n in enumerate(lengths):
        ids[i, n - 1] = eos
        ids[i, n:] = 0
    return images, ids


@pytest.mark.parametrize("eos", [39, 2], ids=["eos-first-position", "legacy-argmax"])
def test_from_hf_clip_matches_transformers(eos):
    hf, cfg = _tiny_hf(eos)
    images, ids = _inputs(39 if eos == 2 else eos)  # legacy mode pools at the largest id
    ours = from_hf_clip(hf.state_dict(), cfg)
    assert ours.cfg.text.pool == ("argmax" if eos == 2 else "eot")
    with torch.no_grad():
        want = hf(input_ids=ids, pixel_values=images)
        img, txt, scale = ours(images, ids)
        logits_per_image, logits_per_text = ours.logits(images, ids)
    assert (img - want.image_embeds).abs().max() < 1e-5
    assert (txt - want.text_embeds).abs().max() < 1e-5
    assert (logits_per_image - want.logits_per_image).abs().max() < 1e-5
    assert (logits_per_text - want.logits_per_text).abs().max() < 1e-5
    assert abs(scale.item() - math.exp(1.7)) < 1e-5


def test_from_hf_clip_needs_the_config_for_heads_and_fails_loudly_on_bad_weights():
    hf, cfg = _tiny_hf(39)
    sd = hf.state_dict()
    guessed = config_from_hf_state_dict(sd)  # without the config: 64 channels per head, at least 1
    assert guessed.vision.num_heads == 1 and guessed.text.heads == 1
    broken = dict(sd)
    broken.pop("vision_model.post_layernorm.bias")
    with pytest.raises(ValueError, match="missing"):
        from_hf_clip(broken, cfg)
    broken = dict(sd)
    broken["text_model.encoder.layers.0.mlp.fc1.weight"] = torch.zeros(64, 31)
    with pytest.raises(ValueError, match="shape"):
        from_hf_clip(broken, cfg)
    with pytest.raises(ValueError, match="unexpected key"):
        from_hf_clip({**sd, "text_model.extra.weight": torch.zeros(1)}, cfg)


def test_load_hf_clip_file_reads_safetensors_and_the_config_beside_it(tmp_path):
    """The optional real-weights cell of notebook 04: a model.safetensors (+ config.json) on disk."""
    import json

    from safetensors.torch import save_file

    from mmcourse.clip.convert import load_hf_clip_file

    hf, cfg = _tiny_hf(39)
    path = tmp_path / "model.safetensors"
    save_file({k: v.contiguous() for k, v in hf.state_dict().items()}, str(path))
    with pytest.raises(FileNotFoundError, match="no CLIP weights"):
        load_hf_clip_file(tmp_path / "missing.safetensors")
    assert load_hf_clip_file(path).cfg.vision.num_heads == 1  # no config: 64 channels per head assumed
    (tmp_path / "config.json").write_text(json.dumps(cfg.to_dict()))
    ours = load_hf_clip_file(path)
    images, ids = _inputs(39)
    with torch.no_grad():
        want = hf(input_ids=ids, pixel_values=images)
        logits_per_image, _ = ours.logits(images, ids)
    assert ours.cfg.vision.num_heads == 3 and ours.cfg.text.heads == 4
    assert (logits_per_image - want.logits_per_image).abs().max() < 1e-5


def test_openai_tokenizer_matches_open_clip():
    import open_clip

    from mmcourse.clip.convert import openai_tokenizer

    texts = ["a photo of a cat.", "An astronaut, riding a horse!", ""]
    ours = openai_tokenizer()(texts)
    torch.testing.assert_close(ours, open_clip.tokenize(texts))
    assert ours[0, 0].item() == 49406 and 49407 in ours[0].tolist()


def test_openai_preprocess_resizes_the_short_side_crops_the_centre_and_normalises():
    import numpy as np

    from mmcourse.clip.convert import OPENAI_MEAN, OPENAI_STD, openai_preprocess

    grey = np.full((100, 150, 3), 128, dtype=np.uint8)
    x = openai_preprocess(grey)
    assert x.shape == (3, 224, 224)
    want = (128 / 255 - torch.tensor(OPENAI_MEAN)) / torch.tensor(OPENAI_STD)
    torch.testing.assert_close(x.mean((1, 2)), want, atol=1e-3, rtol=0)
    # A wide image keeps its middle: red left third, green middle, blue right third.
    wide = np.zeros((90, 270, 3), dtype=np.float32)
    wide[:, :90, 0] = wide[:, 90:180, 1] = wide[:, 180:, 2] = 1.0
    centre = openai_preprocess(wide) * torch.tensor(OPENAI_STD)[:, None, None] + torch.tensor(OPENAI_MEAN)[:, None, None]
    inner = centre[:, :, 4:-4]  # the crop edges blend with the neighbouring thirds (bicubic resize)
    assert inner[1].min() > 0.95 and inner[0].max() < 0.05 and inner[2].max() < 0.05
    with pytest.raises(ValueError, match="RGB array"):
        openai_preprocess(np.zeros((10, 10)))
