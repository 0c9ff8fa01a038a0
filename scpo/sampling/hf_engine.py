"""transformers `generate` backend: the same requests and generations as the vLLM one, for machines
where vLLM cannot run. Slower (no paged attention or continuous batching); correct."""

from __future__ import annotations

from scpo.core.devices import has_gpu
from scpo.core.errors import ScpoError
from scpo.sampling import Generation, Request


class HfSampler:
    def __init__(
        self,
        model: str,
        *,
        dtype: str = "auto",
        top_p: float = 1.0,
        top_k: int | None = None,
        max_tokens: int = 512,
        stop: list[str] | None = None,
        lora_path: str | None = None,
        max_model_len: int | None = None,
        batch_size: int = 8,
        **_ignored,
    ):
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        self.torch = torch
        self.device = "cuda" if has_gpu() else "cpu"
        torch_dtype = {
            "auto": "auto",
            "float32": torch.float32,
            "bfloat16": torch.bfloat16,
            "float16": torch.float16,
        }.get(dtype, "auto")
        try:
            self.tok = AutoTokenizer.from_pretrained(model)
            self.model = AutoModelForCausalLM.from_pretrained(model, dtype=torch_dtype).to(self.device).eval()
        except (OSError, ValueError) as e:
            raise ScpoError(f"transformers could not load the model {model}: {e}") from None
        if lora_path:
            from peft import PeftModel

            self.model = PeftModel.from_pretrained(self.model, lora_path).merge_and_unload()
        self.top_p, self.top_k, self.max_tokens, self.stop = top_p, top_k, max_tokens, stop or []
        self.max_model_len = max_model_len or self.model.config.max_position_embeddings
        self.dtype = str(self.model.dtype).removeprefix("torch.")  # what `auto` became
        self.batch_size = batch_size

    def tokenizer(self):
        return self.tok

    def generate(self, requests: list[Request]) -> list[list[Generation]]:
        from tqdm import tqdm

        return [self._one(r) for r in tqdm(requests, desc="generate (hf)", unit="prompt")]

    def _one(self, r: Request) -> list[Generation]:
        torch = self.torch
        torch.manual_seed(r.seed)
        ids = torch.tensor([r.prompt_token_ids], device=self.device)
        eos = self.tok.eos_token_id
        gens: list[Generation] = []
        for start in range(0, r.n, self.batch_size):
            n = min(self.batch_size, r.n - start)
            with torch.no_grad():
                out = self.model.generate(
                    ids.expand(n, -1),
                    attention_mask=torch.ones_like(ids).expand(n, -1),
                    do_sample=r.temperature > 0,
                    temperature=r.temperature or None,
                    top_p=self.top_p,
                    top_k=self.top_k or None,
                    max_new_tokens=self.max_tokens,
                    stop_strings=self.stop or None,
                    tokenizer=self.tok if self.stop else None,
                    pad_token_id=eos,
                    output_logits=True,
                    return_dict_in_generate=True,
                )
            # Raw logits (before temperature / top-p): log pi(y|x) at temperature 1, like vLLM's raw_logprobs.
            logps = torch.stack(out.logits, 1).float().log_softmax(-1)
            new = out.sequences[:, ids.shape[1] :]
            for row in range(n):
                tokens = new[row].tolist()
                length = len(tokens)
                if eos in tokens:
                    length = tokens.index(eos) + 1  # keep the EOS, as vLLM does
                token_lp = logps[row, torch.arange(length), new[row, :length]].tolist()
                text = self.tok.decode(tokens[:length], skip_special_tokens=True)
                for s in self.stop:  # vLLM cuts the stop string off the text
                    if s in text:
                        text = text[: text.index(s)]
                stopped = (
                    length < len(tokens)
                    or (length and tokens[length - 1] == eos)
                    or any(s in self.tok.decode(tokens[:length]) for s in self.stop)
                )
                gens.append(
                    Generation(
                        text=text,
                        num_tokens=length,
                        finish_reason="stop" if stopped or length < self.max_tokens else "length",
                        logprob=float(sum(token_lp)),
                        token_logprobs=token_lp,
                        token_ids=tokens[:length],
                    )
                )
        return gens
