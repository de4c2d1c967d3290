"""SFT that runs the prompt prefix every example shares once per batch instead of once per example.

Every training trace of a run starts with the same tokens: the system message listing the tools
(~440 tokens for the bundled example, half of a mean trace of ~880) and the header of the user turn. A
plain trainer runs them forward and backward for every example. Here each step runs the shared
prefix once, with gradients, as a batch of one; its key/value cache is repeated under every row
(``repeat_interleave`` is differentiable, so the gradients of all rows flow back into the one
prefix pass) and the rows' own suffixes attend to it:

    prefix (1 x P) --forward--> K,V --repeat B--> suffixes (B x L) --forward--> loss
    loss.backward() reaches the LoRA weights through both passes

The loss and its gradients equal those of the full sequences (the prefix holds no trained token:
``shared_prefix`` stops before the first assistant token of every example); only LoRA dropout
draws one mask for the prefix instead of one per row. The LM head projects only the trained
positions, so no (batch x length x vocabulary) logits are built.

Where no prefix is shared (every example's prompt its own, as in function-calling data, or
``sft.share_prefix`` off) the same loss runs without the prefix pass: the whole rows forward, then the
LM head over the trained positions only. TRL's fused head does that only where Triton runs; on a CPU
it projects every position onto the vocabulary, which took half of a step over prompts of their own.

Both apply to one process without packing, padding-free batches or gradient checkpointing (each
changes the shape of the inputs or re-runs the forward pass); elsewhere TRL's own loss runs.
"""

from __future__ import annotations

from typing import Any

from trl import SFTTrainer

from agentdistill.models.kv_cache import cache_kwarg, output_cache
from agentdistill.models.templates import MIN_SHARED_PREFIX, shared_prefix_len

ENTROPY_SAMPLE = 64  # trained positions per step whose prediction entropy is logged


def shared_prefix(examples: list[dict[str, Any]]) -> list[int]:
    """The tokens every example starts with, cut before the first trained token of any example.

    The token right after the prefix is the first one predicted from the suffix pass, so it must not
    be trained either: the prefix stops one token before the earliest assistant token.
    """
    if not examples:
        return []
    n = shared_prefix_len([e["input_ids"] for e in examples])
    first_trained = min((e["assistant_masks"].index(1) for e in examples if 1 in e["assistant_masks"]), default=n + 1)
    n = min(n, first_trained - 1)
    return examples[0]["input_ids"][:n] if n >= MIN_SHARED_PREFIX else []


class SharedPrefixSFTTrainer(SFTTrainer):
    """TRL's SFTTrainer whose loss runs a prefix common to all examples once per batch and projects only the
    trained positions onto the vocabulary, with or without a shared prefix (see the module doc)."""

    def __init__(self, *args: Any, prefix_ids: list[int] | None = None, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.prefix_ids = list(prefix_ids or [])

    def own_loss_applies(self, inputs: dict[str, Any]) -> bool:
        """Whether this batch takes the loss below (with or without a shared prefix) rather than TRL's."""
        args = self.args
        if args.packing or args.padding_free or self.accelerator.num_processes > 1:
            return False
        if getattr(args, "activation_checkpointing", False) or getattr(args, "gradient_checkpointing", False):
            return False
        return inputs.get("input_ids") is not None and "attention_mask" in inputs and "labels" in inputs

    def prefix_applies(self, inputs: dict[str, Any]) -> bool:
        if not self.prefix_ids or not self.own_loss_applies(inputs):
            return False
        ids = inputs["input_ids"]
        if ids.shape[1] <= len(self.prefix_ids):
            return False
        prefix = ids.new_tensor(self.prefix_ids)
        return bool((ids[:, : len(prefix)] == prefix).all())

    def compute_loss(self, model: Any, inputs: dict[str, Any], return_outputs: bool = False,
                     num_items_in_batch: Any = None) -> Any:
        if not self.own_loss_applies(inputs):
            return super().compute_loss(model, inputs, return_outputs=return_outputs,
                                        num_items_in_batch=num_items_in_batch)
        import torch
        import torch.nn.functional as F

        hf_model = self.accelerator.unwrap_model(model)
        if hasattr(hf_model, "get_base_model"):  # PEFT: the LoRA layers sit inside the transformers model
            hf_model = hf_model.get_base_model()
        backbone, lm_head = hf_model.base_model, hf_model.get_output_embeddings()

        ids, mask, labels = inputs["input_ids"], inputs["attention_mask"], inputs["labels"]
        rows, p = ids.shape[0], len(self.prefix_ids) if self.prefix_applies(inputs) else 0
        # position t predicts token t + 1; the suffix's first token (predicted by the prefix) is never trained
        targets = labels[:, p + 1 :]
        trained = targets != -100
        # accelerate applies mixed precision by wrapping model.forward; these calls bypass it, so enter it here
        with self.accelerator.autocast():
            if p:
                cache = output_cache(backbone(input_ids=ids[:1, :p], use_cache=True))
                cache.batch_repeat_interleave(rows)
                positions = torch.arange(p, ids.shape[1], device=ids.device).expand(rows, -1)
                hidden = backbone(input_ids=ids[:, p:], attention_mask=mask, position_ids=positions,
                                  use_cache=False, **{cache_kwarg(backbone): cache}).last_hidden_state
            else:
                hidden = backbone(input_ids=ids, attention_mask=mask, use_cache=False).last_hidden_state
            logits = lm_head(hidden[:, :-1][trained]).float()
        picked = targets[trained]
        loss = F.cross_entropy(logits, picked, reduction="sum")
        count = num_items_in_batch if num_items_in_batch is not None else trained.sum().clamp(min=1)
        loss = loss / count
        with torch.no_grad():
            metrics = self._metrics["train" if self.model.training else "eval"]
            n = max(1, picked.numel())
            metrics["mean_token_accuracy"].append(((logits.argmax(-1) == picked).sum() / n).item())
            # TRL logs the mean entropy of the predictions; over all 721 trained positions of a long batch its
            # passes over (positions x vocabulary) took 0.14 s of a ~7 s step, so evenly spaced positions estimate it
            sample = logits[:: max(1, len(logits) // ENTROPY_SAMPLE)]
            log_probs = sample.log_softmax(-1)
            metrics["entropy"].append((-(log_probs.exp() * log_probs).sum(-1).mean()).item() if len(sample) else 0.0)
        return (loss, {"loss": loss}) if return_outputs else loss
