"""TRL's DPOTrainer, extended at its narrow points for ScPO / IRPO / CREAM losses and sampler reference log-probs.

- Per-pair columns the loss declares (`weight`, `consistency`) travel through collation next to TRL's own.
- The loss: TRL's `_compute_loss` runs as it is (forward pass, reference log-probs, metrics); a thin
  proxy around the model keeps the policy's forward output, and the loss is recomputed from its
  per-token log-probs. No second forward pass, no copy of TRL's code.
- Pairs that already carry token ids and reference log-probs from the sampler (the sampler is the
  reference model) skip TRL's tokenization and its reference pass.
"""

from __future__ import annotations

from unittest import mock

import torch
from trl import DPOTrainer
from trl.trainer import dpo_trainer
from trl.trainer.dpo_trainer import DataCollatorForPreference

from scpo.losses import PairLoss

TOKENIZED = ("prompt_ids", "chosen_ids", "rejected_ids")


class PairCollator(DataCollatorForPreference):
    """TRL's preference collator, plus the per-pair float columns of the loss."""

    def __init__(self, *args, columns: tuple[str, ...] = (), **kwargs):
        super().__init__(*args, **kwargs)
        self.columns = columns

    def torch_call(self, examples):
        batch = super().torch_call(examples)
        for column in self.columns:
            if column in examples[0]:
                batch[column] = torch.tensor([float(e[column]) for e in examples])
        return batch


class _KeepForward:
    """Calls the model and keeps the first output (the policy forward), so the loss can reuse it."""

    def __init__(self, model):
        self.model, self.outputs = model, None

    def __call__(self, *args, **kwargs):
        out = self.model(*args, **kwargs)
        if self.outputs is None:
            self.outputs = out
        return out

    def __getattr__(self, name):
        return getattr(self.model, name)


class ScpoTrainer(DPOTrainer):
    """DPOTrainer whose loss is a `PairLoss` (scpo/losses/); TRL's own for a loss with `uses_trl_loss`."""

    def __init__(self, *args, loss: PairLoss, **kwargs):
        self.pair_loss = loss
        data = kwargs.get("train_dataset")
        if data is not None and "ref_chosen_logps" in data.column_names:
            # TRL hashes the whole model to key its reference cache; with the sampler's log-probs in the data
            # there is no cache, and for an 8B model the hash costs minutes and a full CPU copy.
            with mock.patch.object(dpo_trainer, "hash_module", lambda module: "sampler-reference"):
                super().__init__(*args, **kwargs)
        else:
            super().__init__(*args, **kwargs)

    def _set_signature_columns_if_needed(self):
        super()._set_signature_columns_if_needed()
        self._signature_columns = list(dict.fromkeys([*self._signature_columns, *self.pair_loss.columns]))

    def _prepare_dataset(self, dataset, processing_class, args, dataset_name):
        if all(c in dataset.column_names for c in TOKENIZED):  # exact sampler tokens: nothing to tokenize
            return dataset
        return super()._prepare_dataset(dataset, processing_class, args, dataset_name)

    def _precompute_ref_logps(self, dataset, name, batch_size):
        if "ref_chosen_logps" in dataset.column_names:  # the sampler's log-probs: no reference pass
            return dataset
        return super()._precompute_ref_logps(dataset, name, batch_size)

    def _compute_loss(self, model, inputs, return_outputs):
        extras = {c: inputs.pop(c) for c in self.pair_loss.columns if c in inputs}
        if self.pair_loss.uses_trl_loss:
            return super()._compute_loss(model, inputs, return_outputs)
        kept = _KeepForward(model)
        result = super()._compute_loss(kept, inputs, return_outputs)
        mask = inputs["completion_mask"][..., 1:]
        logps = kept.outputs.log_probs[:, -mask.size(1) :].sum(dim=1)  # zero outside the completion
        chosen_logps, rejected_logps = logps.chunk(2, dim=0)
        chosen_lengths, _ = mask.sum(dim=1).chunk(2, dim=0)
        per_pair = self.pair_loss(
            chosen_logps,
            rejected_logps,
            inputs["ref_chosen_logps"],
            inputs["ref_rejected_logps"],
            chosen_lengths,
            beta=self.beta,
            **extras,
        )
        loss = per_pair.mean()
        mode = "train" if self.model.training else "eval"
        for column, values in extras.items():
            self._metrics[mode][f"{column}/mean"].append(self.accelerator.gather(values).float().mean().item())
        nll = (-chosen_logps.detach() / chosen_lengths.clamp(min=1)).mean()
        self._metrics[mode]["nll/chosen"].append(self.accelerator.gather(nll).mean().item())
        return (loss, result[1]) if return_outputs else loss
