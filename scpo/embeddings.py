"""Sentence embeddings with transformers alone: AutoModel, the folder's pooling, unit vectors, cosine matrices.

Semantic Voting embeds with `AutoModel` and takes unit vectors (src/SRLM/cluster_score.py:90-114: SimCSE, CLS
pooling, 512 tokens, float32, torch.no_grad). scpo loads any sentence-encoder folder the same way and pools as the
folder says (sentence-transformers' `1_Pooling/config.json`: the packaged all-MiniLM-L6-v2 says mean over the
attention mask; `semantic_pooling: cls` is the reference's SimCSE setting) and truncates where it says
(`sentence_bert_config.json` max_seq_length: 256 for MiniLM; else 512, the reference's). No sentence-transformers
code is imported.

Speed (scpo's choice): every text of a call is embedded in batches of `batch_size` sorted by length, so a batch
pads to similar lengths, under torch.inference_mode; similarity matrices are one matrix product per prompt.
Measured against a plain one-at-a-time loop (benchmarks/bench_semantic.py, one torch thread, all-MiniLM-L6-v2):
3.3x the responses per CPU-second on 512 short CPU-demo answers (31 characters: the loop pays a call per text),
and the same (0.98x) on 512 GSM8K solutions (955 characters, compute-bound at 256 tokens), with identical votes.

The reference pads with `padding_side="left"` and reads position 0 (cluster_score.py:88, 113), which for every
shorter text of a batch is a pad token; right padding and the attention mask here give each text the embedding it
has alone.
"""

from __future__ import annotations

import json
from pathlib import Path

from scpo.core.devices import has_gpu
from scpo.core.encoders import check_encoder
from scpo.core.errors import ScpoError

POOLING_MODES = ("mean", "cls", "max")
DEFAULT_MAX_LENGTH = 512  # the reference's truncation (cluster_score.py:109) when the folder names none


def folder_pooling(path: str | Path) -> str:
    """The pooling a sentence-transformers folder declares (1_Pooling/config.json); mean when it declares none."""
    config_file = Path(path) / "1_Pooling" / "config.json"
    if not config_file.exists():
        return "mean"
    try:
        config = json.loads(config_file.read_text())
    except (OSError, ValueError) as error:
        raise ScpoError(f"{config_file}: not readable JSON ({error})") from None
    modes = [
        m
        for m, key in (
            ("mean", "pooling_mode_mean_tokens"),
            ("cls", "pooling_mode_cls_token"),
            ("max", "pooling_mode_max_tokens"),
        )
        if config.get(key)
    ]
    others = [
        k
        for k, v in config.items()
        if k.startswith("pooling_mode_")
        and v
        and k not in ("pooling_mode_mean_tokens", "pooling_mode_cls_token", "pooling_mode_max_tokens")
    ]
    if others or len(modes) != 1:
        raise ScpoError(
            f"{config_file}: pooling {others or modes or 'none'} is not supported (one of mean, cls, max); "
            "set semantic_pooling to override it"
        )
    return modes[0]


def folder_max_length(path: str | Path) -> int:
    config_file = Path(path) / "sentence_bert_config.json"
    if config_file.exists():
        try:
            value = json.loads(config_file.read_text()).get("max_seq_length")
        except (OSError, ValueError):
            value = None
        if isinstance(value, int) and value > 0:
            return value
    return DEFAULT_MAX_LENGTH


class Embedder:
    """A sentence encoder: `embed(texts)` -> unit vectors (float32, CPU), `similarities(groups)` -> cosine matrices."""

    def __init__(
        self,
        path: str,
        pooling: str = "auto",
        max_length: int | None = None,
        batch_size: int = 64,
        device: str = "auto",
    ):
        import torch
        from transformers import AutoModel, AutoTokenizer

        check_encoder(path)
        self.path = str(path)
        self.pooling = folder_pooling(path) if pooling == "auto" else pooling
        if self.pooling not in POOLING_MODES:
            raise ScpoError(f"setting semantic_pooling={pooling!r}: expected auto or one of {POOLING_MODES}")
        self.max_length = max_length or folder_max_length(path)
        self.batch_size = batch_size
        self.device = ("cuda" if has_gpu() else "cpu") if device == "auto" else device
        try:
            self.tokenizer = AutoTokenizer.from_pretrained(self.path)
            self.model = AutoModel.from_pretrained(self.path, dtype=torch.float32).to(self.device).eval()
        except (OSError, ValueError, KeyError) as error:
            raise ScpoError(
                f"setting semantic_model={self.path!r}: transformers cannot load it as an encoder "
                f"({type(error).__name__}: {str(error)[:300]})"
            ) from None
        self.tokenizer.padding_side = "right"
        self.max_length = min(
            self.max_length,
            self.model.config.max_position_embeddings
            if getattr(self.model.config, "max_position_embeddings", None)
            else self.max_length,
        )

    def _pool(self, hidden, mask):
        import torch

        if self.pooling == "cls":
            return hidden[:, 0]
        weights = mask.unsqueeze(-1).to(hidden.dtype)
        if self.pooling == "max":
            return hidden.masked_fill(weights == 0, torch.finfo(hidden.dtype).min).amax(dim=1)
        return (hidden * weights).sum(dim=1) / weights.sum(dim=1).clamp(min=1e-9)

    def embed(self, texts: list[str]):
        """Unit vectors, one row per text (in the order given)."""
        import torch

        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        out = torch.empty(len(texts), self.model.config.hidden_size, dtype=torch.float32)
        with torch.inference_mode():
            for start in range(0, len(order), self.batch_size):
                rows = order[start : start + self.batch_size]
                batch = self.tokenizer(
                    [texts[i] for i in rows],
                    padding=True,
                    truncation=True,
                    max_length=self.max_length,
                    return_tensors="pt",
                ).to(self.device)
                hidden = self.model(**batch).last_hidden_state
                pooled = torch.nn.functional.normalize(self._pool(hidden, batch["attention_mask"]).float(), dim=-1)
                out[torch.tensor(rows)] = pooled.cpu()
        return out

    def similarities(self, groups: list[list[str]]) -> list[list[list[float]]]:
        """Each group's cosine matrix; every text of every group is embedded in one sorted, batched pass."""
        flat = [t for group in groups for t in group]
        vectors = self.embed(flat) if flat else None
        out, start = [], 0
        for group in groups:
            block = vectors[start : start + len(group)] if group else None
            out.append((block @ block.T).double().tolist() if group else [])
            start += len(group)
        return out
