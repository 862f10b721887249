"""SAM's mask decoder: light, run once per prompt on the cached image embedding.

1. Tokens = [IoU token, 4 mask tokens, prompt tokens]; image = embedding + dense prompt.
2. The two-way transformer lets tokens and image attend to each other.
3. ``output_upscaling``: two transposed convs take the image 4x up (C -> C/8 channels).
4. Each mask token goes through its own small MLP (a hypernetwork, ``output_hypernetworks_mlps``)
   that outputs C/8 weights; the mask is the dot product of those weights with every upscaled
   pixel: logits (4h, 4w).
5. ``iou_prediction_head`` reads the IoU token: the mask's predicted IoU with the target.

Mask token 0 is the single-output answer (used when several prompts make the target clear);
tokens 1-3 are the three answers of an ambiguous prompt (``multimask_output=True``).
Parameter names are segment-anything's (segment_anything/modeling/mask_decoder.py).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .common import LayerNorm2d


class MLP(nn.Module):
    """``num_layers`` linear layers with ReLU between (SAM's hypernetwork and IoU head)."""

    def __init__(self, input_dim: int, hidden_dim: int, output_dim: int, num_layers: int,
                 sigmoid_output: bool = False) -> None:
        super().__init__()
        self.num_layers = num_layers
        h = [hidden_dim] * (num_layers - 1)
        self.layers = nn.ModuleList(nn.Linear(n, k) for n, k in zip([input_dim] + h, h + [output_dim]))
        self.sigmoid_output = sigmoid_output

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for i, layer in enumerate(self.layers):
            x = F.relu(layer(x)) if i < self.num_layers - 1 else layer(x)
        return torch.sigmoid(x) if self.sigmoid_output else x


class MaskDecoder(nn.Module):
    """(image embeddings (1 or B, C, h, w), dense PE (1, C, h, w), sparse (B, T, C), dense (B, C, h, w))
    -> mask logits (B, 3 or 1, 4h, 4w) and predicted IoUs (B, 3 or 1)."""

    def __init__(
        self, *, transformer_dim: int, transformer: nn.Module, num_multimask_outputs: int = 3,
        activation: type[nn.Module] = nn.GELU, iou_head_depth: int = 3, iou_head_hidden_dim: int = 256,
    ) -> None:
        super().__init__()
        if transformer_dim % 8:
            raise ValueError(f"transformer_dim must be divisible by 8 (upscaling to C/4 then C/8), got {transformer_dim}")
        self.transformer_dim = transformer_dim
        self.transformer = transformer
        self.num_multimask_outputs = num_multimask_outputs
        self.iou_token = nn.Embedding(1, transformer_dim)
        self.num_mask_tokens = num_multimask_outputs + 1
        self.mask_tokens = nn.Embedding(self.num_mask_tokens, transformer_dim)
        self.output_upscaling = nn.Sequential(
            nn.ConvTranspose2d(transformer_dim, transformer_dim // 4, kernel_size=2, stride=2),
            LayerNorm2d(transformer_dim // 4),
            activation(),
            nn.ConvTranspose2d(transformer_dim // 4, transformer_dim // 8, kernel_size=2, stride=2),
            activation(),
        )
        self.output_hypernetworks_mlps = nn.ModuleList(
            MLP(transformer_dim, transformer_dim, transformer_dim // 8, 3) for _ in range(self.num_mask_tokens)
        )
        self.iou_prediction_head = MLP(transformer_dim, iou_head_hidden_dim, self.num_mask_tokens, iou_head_depth)

    def forward(
        self, image_embeddings: torch.Tensor, image_pe: torch.Tensor, sparse_prompt_embeddings: torch.Tensor,
        dense_prompt_embeddings: torch.Tensor, multimask_output: bool,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        masks, iou_pred = self.predict_masks(image_embeddings, image_pe, sparse_prompt_embeddings,
                                             dense_prompt_embeddings)
        keep = slice(1, None) if multimask_output else slice(0, 1)
        return masks[:, keep], iou_pred[:, keep]

    def predict_masks(
        self, image_embeddings: torch.Tensor, image_pe: torch.Tensor, sparse_prompt_embeddings: torch.Tensor,
        dense_prompt_embeddings: torch.Tensor,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """All 4 mask tokens' logits (B, 4, 4h, 4w) and IoUs (B, 4)."""
        B = sparse_prompt_embeddings.shape[0]
        output_tokens = torch.cat([self.iou_token.weight, self.mask_tokens.weight], dim=0)  # (5, C)
        tokens = torch.cat([output_tokens[None].expand(B, -1, -1), sparse_prompt_embeddings], dim=1)  # (B, T, C)
        # One image for many prompts (interactive use), or one image per prompt (training).
        src = image_embeddings.expand(B, -1, -1, -1) if image_embeddings.shape[0] == 1 else image_embeddings
        src = src + dense_prompt_embeddings                                   # (B, C, h, w)
        pos_src = image_pe.expand(B, -1, -1, -1)
        b, c, h, w = src.shape
        hs, src = self.transformer(src, pos_src, tokens)                      # (B, T, C), (B, hw, C)
        iou_token_out = hs[:, 0]
        mask_tokens_out = hs[:, 1 : 1 + self.num_mask_tokens]                 # (B, 4, C)
        upscaled = self.output_upscaling(src.transpose(1, 2).reshape(b, c, h, w))  # (B, C/8, 4h, 4w)
        hyper_in = torch.stack([mlp(mask_tokens_out[:, i]) for i, mlp in enumerate(self.output_hypernetworks_mlps)],
                               dim=1)                                         # (B, 4, C/8)
        b, c8, H4, W4 = upscaled.shape
        masks = (hyper_in @ upscaled.reshape(b, c8, H4 * W4)).reshape(b, -1, H4, W4)  # (B, 4, 4h, 4w)
        return masks, self.iou_prediction_head(iou_token_out)
