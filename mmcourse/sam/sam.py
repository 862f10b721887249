"""``Sam``: the three parts composed, with the image embedding cached between prompts.

    sam.set_image(image)                      # heavy: the image encoder, once per image
    out = sam.predict(points=[[20, 30]], labels=[1])     # light: prompt encoder + mask decoder
    out.masks, out.iou_predictions, out.low_res_logits

Post-processing as in segment-anything: the low-resolution logits (4h, 4w) are upsampled
bilinearly to the encoder's input size, cropped to the resized image (padding dropped), resized
to the original image, and thresholded at logit 0 (probability 0.5).

Training calls the differentiable pieces directly: :meth:`Sam.embed` (images -> embeddings) and
:meth:`Sam.decode` (embeddings + prompts -> low-res logits and IoUs).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from .image_encoder import ImageEncoderConfig, ImageEncoderViT
from .mask_decoder import MaskDecoder
from .prompt_encoder import PromptEncoder
from .transformer import TwoWayTransformer

# ImageNet statistics in [0, 1] units: SAM's pixel_mean / pixel_std divided by 255.
PIXEL_MEAN = (0.485, 0.456, 0.406)
PIXEL_STD = (0.229, 0.224, 0.225)


@dataclass
class SamConfig:
    """Hyper-parameters of :class:`Sam`. The prompt width is ``encoder.out_chans``."""

    encoder: ImageEncoderConfig = field(default_factory=ImageEncoderConfig)
    mask_in_chans: int = 16
    decoder_depth: int = 2
    decoder_heads: int = 4
    decoder_mlp_dim: int = 256
    iou_head_hidden_dim: int = 64
    attention_downsample_rate: int = 2
    text_dim: int | None = None          # width of the CLIP embeddings for the text path (None: no text)
    text_scale: float = 1.0              # multiplies the unit CLIP embedding before text_proj
    text_shift: bool = False             # a stored shift moves CLIP text embeddings to where image crops lie
    pixel_mean: tuple[float, float, float] = PIXEL_MEAN
    pixel_std: tuple[float, float, float] = PIXEL_STD

    def __post_init__(self) -> None:
        if isinstance(self.encoder, dict):
            self.encoder = ImageEncoderConfig(**self.encoder)
        self.pixel_mean, self.pixel_std = tuple(self.pixel_mean), tuple(self.pixel_std)
        if self.text_shift and self.text_dim is None:
            raise ValueError("text_shift needs a text path (text_dim)")

    @property
    def embed_dim(self) -> int:
        return self.encoder.out_chans

    def to_dict(self) -> dict:
        d = asdict(self)
        d["encoder"] = self.encoder.to_dict()
        d["pixel_mean"], d["pixel_std"] = list(self.pixel_mean), list(self.pixel_std)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> SamConfig:
        return cls(**d)


class Prediction(NamedTuple):
    masks: torch.Tensor            # (K, H, W) bool at the original image size
    iou_predictions: torch.Tensor  # (K,)
    low_res_logits: torch.Tensor   # (K, 4h, 4w): feed one back as ``mask_input``
    logits: torch.Tensor           # (K, H, W) float, before the threshold


class Sam(nn.Module):
    """image_encoder + prompt_encoder + mask_decoder (segment-anything's attribute names)."""

    mask_threshold = 0.0

    def __init__(self, cfg: SamConfig | None = None) -> None:
        super().__init__()
        cfg = cfg or SamConfig()
        self.cfg = cfg
        enc, C = cfg.encoder, cfg.embed_dim
        self.image_encoder = ImageEncoderViT(enc)
        self.prompt_encoder = PromptEncoder(C, (enc.grid, enc.grid), (enc.img_size, enc.img_size), cfg.mask_in_chans,
                                            text_dim=cfg.text_dim, text_scale=cfg.text_scale)
        self.mask_decoder = MaskDecoder(
            transformer_dim=C, num_multimask_outputs=3, iou_head_depth=3, iou_head_hidden_dim=cfg.iou_head_hidden_dim,
            transformer=TwoWayTransformer(cfg.decoder_depth, C, cfg.decoder_heads, cfg.decoder_mlp_dim,
                                          attention_downsample_rate=cfg.attention_downsample_rate),
        )
        self.register_buffer("pixel_mean", torch.tensor(cfg.pixel_mean).view(-1, 1, 1), persistent=False)
        self.register_buffer("pixel_std", torch.tensor(cfg.pixel_std).view(-1, 1, 1), persistent=False)
        if cfg.text_shift:         # the modality gap, set by the build (:func:`mmcourse.sam.train.modality_gap`)
            self.register_buffer("text_shift", torch.zeros(cfg.text_dim))
        else:
            self.text_shift = None
        self._text = None          # (frozen CLIP, tokenizer), not a submodule: not in the state dict
        self.reset_image()

    # -- the differentiable pieces -------------------------------------------------------------

    def preprocess(self, images: torch.Tensor) -> torch.Tensor:
        """(B, 3, h, w) in [0, 1], longest side already img_size -> normalised, padded (B, 3, S, S)."""
        S = self.cfg.encoder.img_size
        x = (images - self.pixel_mean) / self.pixel_std
        return F.pad(x, (0, S - x.shape[-1], 0, S - x.shape[-2]))

    def embed(self, images: torch.Tensor) -> torch.Tensor:
        """(B, 3, S, S) images in [0, 1] -> image embeddings (B, C, h, w)."""
        return self.image_encoder(self.preprocess(images))

    def decode(
        self, image_embeddings: torch.Tensor, points: torch.Tensor | None = None, labels: torch.Tensor | None = None,
        boxes: torch.Tensor | None = None, mask_input: torch.Tensor | None = None,
        text_features: torch.Tensor | None = None, multimask_output: bool = True,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Prompts in the encoder's input frame -> low-res logits (B, 3 or 1, 4h, 4w) and IoUs (B, 3 or 1).

        points (B, N, 2) xy pixels with labels (B, N); boxes (B, 4) xyxy; mask_input (B, 1, 4h, 4w)
        logits; text_features (B, text_dim). image_embeddings: (1 or B, C, h, w).
        """
        sparse, dense = self.prompt_encoder(
            points=(points, labels) if points is not None else None, boxes=boxes, masks=mask_input, text=text_features)
        return self.mask_decoder(image_embeddings, self.prompt_encoder.get_dense_pe(), sparse, dense, multimask_output)

    def postprocess_masks(self, low_res: torch.Tensor, input_size: tuple[int, int],
                          original_size: tuple[int, int]) -> torch.Tensor:
        """(B, K, 4h, 4w) logits -> (B, K, H, W) logits: upsample to S x S, crop to input_size, resize."""
        S = self.cfg.encoder.img_size
        x = F.interpolate(low_res, (S, S), mode="bilinear", align_corners=False)
        x = x[..., : input_size[0], : input_size[1]]
        return F.interpolate(x, tuple(original_size), mode="bilinear", align_corners=False)

    # -- text ---------------------------------------------------------------------------------

    def set_text_encoder(self, clip, tokenizer) -> None:
        """Attach a frozen CLIP (``encode_image`` for training prompts, ``encode_text`` for
        ``predict(text=...)``) and its tokenizer."""
        if self.cfg.text_dim is None:
            raise ValueError("text: this Sam was built without a text path (SamConfig.text_dim=None)")
        for p in clip.parameters():
            p.requires_grad_(False)
        self._text = (clip.eval(), tokenizer)

    def encode_image_prompt(self, crops: torch.Tensor) -> torch.Tensor:
        """Object crops (B, 3, s, s) at CLIP's input size -> unit CLIP image embeddings (B, text_dim):
        the prompts the text slot trains on (no gradient: CLIP is frozen)."""
        if self._text is None:
            raise ValueError("text: no CLIP attached; call set_text_encoder(clip, tokenizer) first")
        with torch.no_grad():
            return self._text[0].encode_image(crops.to(self.pixel_mean.device), normalize=True)

    def encode_text(self, texts: list[str], shift: bool = True) -> torch.Tensor:
        """Phrases -> unit CLIP text embeddings (B, text_dim), no gradient (the tower is frozen).
        SAM normalises both CLIP embeddings, so text can stand in for the image embeddings it trained on.
        With ``cfg.text_shift`` each is moved by the stored ``text_shift`` (the mean image-crop embedding
        minus the mean text embedding, both of training data) and renormalised: CLIP's image and text
        embeddings occupy separate cones of its space (the modality gap, Liang et al. 2022), and the
        slot learned the image crops' cone. ``shift=False``: the embeddings as CLIP gives them."""
        if self._text is None:
            raise ValueError("text: no text encoder attached; call set_text_encoder(clip, tokenizer) first")
        clip, tok = self._text
        for t in texts:
            unknown = [w for w in tok.split(t) if w not in tok.stoi]
            if unknown:
                raise ValueError(f"text: unknown words {unknown} in {t!r}; the text tower knows only "
                                 f"ShapesWorld's vocabulary ({len(tok.words)} words)")
        with torch.no_grad():
            feats = clip.encode_text(tok(texts).to(self.pixel_mean.device), normalize=True)
            return feats if self.text_shift is None or not shift else F.normalize(feats + self.text_shift, dim=-1)

    # -- interactive use: one image, many prompts ---------------------------------------------

    def reset_image(self) -> None:
        self.features = None
        self.original_size = None
        self.input_size = None

    @torch.no_grad()
    def set_image(self, image: torch.Tensor) -> None:
        """Run the image encoder once. image: (3, H, W), float in [0, 1] or uint8 in 0..255
        (converted: x / 255, the units segment-anything's predictor takes), any size (the longest
        side is resized to img_size, the rest padded, as SAM's ResizeLongestSide)."""
        image = check_image(image)
        S = self.cfg.encoder.img_size
        H, W = image.shape[1:]
        scale = S / max(H, W)
        h, w = max(1, int(H * scale + 0.5)), max(1, int(W * scale + 0.5))
        x = image[None].to(self.pixel_mean.device)
        if (h, w) != (H, W):
            x = F.interpolate(x, (h, w), mode="bilinear", align_corners=False, antialias=True)
        self.features = self.image_encoder(self.preprocess(x))
        self.original_size, self.input_size = (H, W), (h, w)

    @torch.no_grad()
    def predict(
        self, points=None, labels=None, box=None, mask_input: torch.Tensor | None = None,
        text: str | None = None, multimask_output: bool = True,
    ) -> Prediction:
        """Masks for one prompt on the image given to :meth:`set_image`.

        points: (N, 2) xy pixels of the original image, labels: (N,) 1 positive / 0 negative;
        box: (4,) xyxy pixels; mask_input: (1, 4h, 4w) low-res logits (a previous
        ``low_res_logits[k:k+1]``); text: a phrase such as "the red triangle".
        """
        if self.features is None:
            raise ValueError("no image: call set_image(image) before predict")
        H, W = self.original_size
        sy, sx = self.input_size[0] / H, self.input_size[1] / W
        dev = self.pixel_mean.device
        pts = lab = bx = txt = None
        if points is not None or labels is not None:
            if points is None or labels is None:
                raise ValueError("points and labels go together: give both or neither")
            pts = _as_float(points, "points", dev)
            if pts.ndim == 1 and pts.shape == (2,):
                pts = pts[None]
            if pts.ndim != 2 or pts.shape[1] != 2:
                raise ValueError(f"points must be (N, 2) xy pixels, got shape {tuple(pts.shape)}")
            lab = _as_float(labels, "labels", dev).reshape(-1)
            if len(lab) != len(pts) or len(pts) == 0:
                raise ValueError(f"points (N, 2) and labels (N,) must have the same N >= 1, got "
                                 f"{len(pts)} points and {len(lab)} labels")
            if not bool(((lab == 0) | (lab == 1)).all()):
                raise ValueError(f"labels must be 1 (positive) or 0 (negative), got {lab.tolist()}")
            outside = (pts[:, 0] < 0) | (pts[:, 0] >= W) | (pts[:, 1] < 0) | (pts[:, 1] >= H)
            if bool(outside.any()):
                raise ValueError(f"points must lie inside the {W}x{H} image (0 <= x < {W}, 0 <= y < {H}), "
                                 f"got {pts[outside].tolist()}")
            pts = (pts * torch.tensor([sx, sy], device=dev))[None]
            lab = lab.long()[None]
        if box is not None:
            bx = _as_float(box, "box", dev)
            if bx.shape not in ((4,), (1, 4)):
                raise ValueError(f"box must be (x0, y0, x1, y1), got {box!r}")
            bx = bx.reshape(4)
            x0, y0, x1, y1 = bx.tolist()
            if x0 > x1 or y0 > y1:
                raise ValueError(f"box must have x0 <= x1 and y0 <= y1, got {bx.tolist()}")
            if x0 < 0 or y0 < 0 or x1 > W or y1 > H:
                raise ValueError(f"box must lie inside the {W}x{H} image, got {bx.tolist()}")
            bx = (bx * torch.tensor([sx, sy, sx, sy], device=dev))[None]
        if mask_input is not None:
            want = tuple(self.prompt_encoder.mask_input_size)
            if not isinstance(mask_input, torch.Tensor) or tuple(mask_input.shape[-2:]) != want or \
                    mask_input.numel() != want[0] * want[1]:
                raise ValueError(f"mask_input must be low-res logits of shape (1, {want[0]}, {want[1]}), got "
                                 f"{tuple(mask_input.shape) if isinstance(mask_input, torch.Tensor) else mask_input!r}")
            if not mask_input.is_floating_point():
                raise ValueError(f"mask_input must be float low-res logits, got dtype {mask_input.dtype}")
            mask_input = mask_input.reshape(1, 1, *want).float().to(dev)
            if not bool(torch.isfinite(mask_input).all()):
                raise ValueError("mask_input must be finite low-res logits, got NaN or inf values")
        if text is not None:
            if not isinstance(text, str) or not text.strip():
                raise ValueError(f"text must be a non-empty phrase, got {text!r}")
            txt = self.encode_text([text])
        if pts is None and bx is None and txt is None and mask_input is None:
            raise ValueError("give at least one prompt: points, box, mask_input or text")
        low, iou = self.decode(self.features, pts, lab, bx, mask_input, txt, multimask_output)
        logits = self.postprocess_masks(low, self.input_size, self.original_size)[0]
        return Prediction(logits > self.mask_threshold, iou[0], low[0], logits)


def check_image(image) -> torch.Tensor:
    """A (3, H, W) image as float in [0, 1]: uint8 is converted (x / 255); NaN, inf, other dtypes,
    values outside [0, 1] and empty images raise a ValueError naming ``image``."""
    if not isinstance(image, torch.Tensor) or image.ndim != 3 or image.shape[0] != 3:
        raise ValueError(f"image must be a (3, H, W) tensor in [0, 1] (or uint8), got "
                         f"{tuple(image.shape) if isinstance(image, torch.Tensor) else type(image).__name__}")
    if image.shape[1] == 0 or image.shape[2] == 0:
        raise ValueError(f"image must not be empty, got shape {tuple(image.shape)}")
    if image.dtype == torch.uint8:
        return image.float() / 255
    if not image.is_floating_point():
        raise ValueError(f"image must be float in [0, 1] or uint8 in 0..255, got dtype {image.dtype}")
    image = image.float()
    if not bool(torch.isfinite(image).all()):
        raise ValueError("image must be finite, got NaN or inf values")
    lo, hi = float(image.min()), float(image.max())
    if lo < -0.01 or hi > 1.01:   # a little slack for rounding, not for a 0..255 float image
        raise ValueError(f"image values must lie in [0, 1], got min {lo:.3g}, max {hi:.3g} "
                         "(a 0..255 image: pass it as uint8 or divide by 255)")
    return image.clamp(0, 1)


def _as_float(x, name: str, device) -> torch.Tensor:
    """A prompt argument as a finite float tensor, or a ValueError naming it."""
    if isinstance(x, torch.Tensor) and (x.is_complex() or x.dtype == torch.bool):
        raise ValueError(f"{name} must be real numbers, got dtype {x.dtype}")
    try:
        t = torch.as_tensor(x, dtype=torch.float32, device=device)
    except (TypeError, ValueError, RuntimeError) as e:
        raise ValueError(f"{name} must be numbers, got {x!r}") from e
    if t.numel() == 0:
        raise ValueError(f"{name} must not be empty")
    if not bool(torch.isfinite(t).all()):
        raise ValueError(f"{name} must be finite, got {t.tolist()}")
    return t
