"""Sequence log-probabilities log pi(y|x) of sampled responses under a model: one batched transformers forward.

Used by the implicit-reward labelers for models other than the sampler (the sampler's own log-probs
are in the samples rows). The response tokens are the sampled ones (`completion_token_ids`) when the
rows have them, so both sides of r(y) = log pi_t(y|x) - log pi_ref(y|x) cover the same tokens;
otherwise the completion text is re-tokenized (plus EOS when the sample stopped on it).
"""

from __future__ import annotations

from scpo.core.devices import has_gpu
from scpo.core.errors import ScpoError
from scpo.sampling import prompt_ids


def completion_ids(tokenizer, row: dict) -> list[int]:
    if row.get("completion_token_ids") is not None:
        return list(row["completion_token_ids"])
    ids = tokenizer(row["completion"], add_special_tokens=False)["input_ids"]
    if row.get("finish_reason") == "stop" and tokenizer.eos_token_id is not None:
        ids = ids + [tokenizer.eos_token_id]
    return ids


class SequenceScorer:
    """Holds one model; `logps(rows)` returns each row's summed completion log-prob at temperature 1."""

    def __init__(self, model_path: str, dtype: str = "auto", batch_size: int = 8):
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        self.torch = torch
        self.device = "cuda" if has_gpu() else "cpu"
        # On CPU float32: bf16 log-probs would differ from the sampler's by more than the rewards' spread.
        torch_dtype = (
            torch.float32
            if self.device == "cpu" and dtype == "auto"
            else {"auto": "auto", "float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}.get(
                dtype
            )
        )
        if torch_dtype is None:
            raise ScpoError(f"setting dtype={dtype!r}: expected auto, float32, bfloat16 or float16")
        try:
            self.tokenizer = AutoTokenizer.from_pretrained(model_path)
            self.model = AutoModelForCausalLM.from_pretrained(model_path, dtype=torch_dtype).to(self.device).eval()
        except (OSError, ValueError) as e:
            raise ScpoError(f"transformers could not load the model {model_path}: {e}") from None
        self.batch_size = batch_size
        self.pad_id = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else 0

    def logps(self, rows: list[dict], prompt_of) -> list[float]:
        """Summed log-probs of each row's completion given its prompt; `prompt_of(row)` gives the chat."""
        torch = self.torch
        seqs = [(prompt_ids(self.tokenizer, prompt_of(r)), completion_ids(self.tokenizer, r)) for r in rows]
        # Longest first: batches of similar length waste less padding.
        order = sorted(range(len(seqs)), key=lambda i: -(len(seqs[i][0]) + len(seqs[i][1])))
        out = [0.0] * len(seqs)
        for start in range(0, len(order), self.batch_size):
            batch = order[start : start + self.batch_size]
            longest = max(len(seqs[i][0]) + len(seqs[i][1]) for i in batch)
            ids = torch.full((len(batch), longest), self.pad_id, dtype=torch.long)
            mask = torch.zeros((len(batch), longest), dtype=torch.long)
            for b, i in enumerate(batch):
                full = seqs[i][0] + seqs[i][1]
                ids[b, : len(full)] = torch.tensor(full)
                mask[b, : len(full)] = 1
            with torch.no_grad():
                logits = self.model(input_ids=ids.to(self.device), attention_mask=mask.to(self.device)).logits
            for b, i in enumerate(batch):
                p, c = len(seqs[i][0]), len(seqs[i][1])
                if c == 0:
                    continue
                # Position t predicts token t + 1: the completion tokens p .. p+c-1 come from logits p-1 .. p+c-2.
                step = logits[b, p - 1 : p + c - 1].float().log_softmax(-1)
                target = torch.tensor(seqs[i][1], device=step.device)
                out[i] = float(step.gather(1, target[:, None]).sum())
        return out
