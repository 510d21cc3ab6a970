"""Sampling from a Hugging Face causal LM on the CPU: token ids in, token ids and log probabilities out.

:class:`CpuGenerator` holds the policy's copy that serves rollouts. It samples with transformers'
``generate`` (a batch of prompts at once, left-padded) and returns, per request, the new token ids
(the EOS token included when the model stopped on it, as vLLM does), why it stopped, and the log
probability of each sampled token: of the model's own distribution (``raw_logprobs``) or of the
distribution it was sampled from, after temperature and top-p/top-k (``processed_logprobs``,
verl's default, as in vLLM). :meth:`CpuGenerator.load_weights` takes the actor's new weights.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

LOGPROBS_MODES = ("raw_logprobs", "processed_logprobs")


@dataclass(frozen=True)
class Sampling:
    """Sampling settings of a request; requests with equal settings are sampled in one batch."""

    temperature: float = 1.0
    top_p: float = 1.0
    top_k: int = 0

    @property
    def greedy(self) -> bool:
        return self.temperature <= 0.0


@dataclass
class GenRequest:
    prompt_ids: list[int]
    max_tokens: int
    sampling: Sampling = field(default_factory=Sampling)


@dataclass
class GenResult:
    token_ids: list[int]
    logprobs: list[float]
    finish_reason: str  # "stop" (EOS) or "length"


class CpuGenerator:
    """A causal LM on the CPU that samples batches of requests (see the module docstring).

    :param model_path: a Hugging Face model directory (config, weights, tokenizer).
    :param dtype: parameter dtype (``float32`` is usually the fastest on CPUs).
    :param load_weights: False builds the model from its config with random weights (verl's
        ``load_format: dummy``): the trainer's first weight sync fills them in.
    :param logprobs_mode: ``raw_logprobs`` or ``processed_logprobs``.
    :param max_model_len: longest prompt plus response (None: the model's own limit).
    :param seed: seed of the sampling generator (None: not seeded).
    """

    def __init__(
        self,
        model_path: str,
        *,
        dtype: str = "float32",
        load_weights: bool = True,
        logprobs_mode: str = "processed_logprobs",
        max_model_len: int | None = None,
        trust_remote_code: bool = False,
        seed: int | None = None,
    ) -> None:
        from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

        if logprobs_mode not in LOGPROBS_MODES:
            raise ValueError(f"logprobs_mode {logprobs_mode!r} is not supported on CPU; use one of {LOGPROBS_MODES}")
        self.model_path = model_path
        self.logprobs_mode = logprobs_mode
        self.tokenizer = AutoTokenizer.from_pretrained(model_path, trust_remote_code=trust_remote_code)
        torch_dtype = getattr(torch, dtype) if isinstance(dtype, str) else dtype
        if load_weights:
            self.model = AutoModelForCausalLM.from_pretrained(
                model_path, dtype=torch_dtype, trust_remote_code=trust_remote_code
            )
        else:
            config = AutoConfig.from_pretrained(model_path, trust_remote_code=trust_remote_code)
            self.model = AutoModelForCausalLM.from_config(
                config, dtype=torch_dtype, trust_remote_code=trust_remote_code
            )
        self.model.eval()
        config = self.model.config
        self.max_model_len = max_model_len or getattr(config, "max_position_embeddings", None) or 4096
        self.eos_token_ids = self._eos_ids()
        self.pad_token_id = (
            self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else self.eos_token_ids[0]
        )
        # Every name verl may send, tied aliases included (lm_head.weight of a tied embedding).
        self._params: dict[str, torch.Tensor] = dict(self.model.state_dict(keep_vars=True))
        self._lock = threading.Lock()  # one batch or one weight load at a time
        self.weights_version = 0
        if seed is not None:
            torch.manual_seed(seed)

    def _eos_ids(self) -> list[int]:
        ids: list[int] = []
        for source in (self.model.generation_config.eos_token_id, self.tokenizer.eos_token_id):
            if source is None:
                continue
            ids.extend(source if isinstance(source, list) else [source])
        if not ids:
            raise ValueError(f"{self.model_path}: neither the tokenizer nor the generation config names an EOS token")
        return list(dict.fromkeys(ids))

    # --- prompts -----------------------------------------------------------------------------------

    def chat_prompt_ids(self, messages: Sequence[Any], tools: Sequence[Any] | None = None) -> list[int]:
        """The chat template applied to ``messages`` with the generation prompt, as token ids."""
        text = self.tokenizer.apply_chat_template(
            list(messages), tools=list(tools) if tools else None, add_generation_prompt=True, tokenize=False
        )
        return self.text_prompt_ids(text)

    def text_prompt_ids(self, text: str) -> list[int]:
        return list(self.tokenizer(text, add_special_tokens=False)["input_ids"])

    def decode(self, token_ids: Sequence[int]) -> str:
        return self.tokenizer.decode(list(token_ids), skip_special_tokens=True)

    def token_text(self, token_id: int) -> str:
        return self.tokenizer.decode([token_id])

    # --- sampling ----------------------------------------------------------------------------------

    def generate(self, requests: Sequence[GenRequest]) -> list[GenResult]:
        """Sample every request; requests are batched by sampling settings."""
        results: list[GenResult | None] = [None] * len(requests)
        groups: dict[Sampling, list[int]] = {}
        for index, request in enumerate(requests):
            room = self.max_model_len - len(request.prompt_ids)
            if room < 1:
                raise ValueError(
                    f"the prompt has {len(request.prompt_ids)} tokens; no room to generate within "
                    f"max_model_len={self.max_model_len}"
                )
            groups.setdefault(request.sampling, []).append(index)
        with self._lock, torch.inference_mode():
            for sampling, indices in groups.items():
                for index, result in zip(indices, self._sample([requests[i] for i in indices], sampling), strict=True):
                    results[index] = result
        return [r for r in results if r is not None]

    def _sample(self, requests: Sequence[GenRequest], sampling: Sampling) -> list[GenResult]:
        longest = max(len(r.prompt_ids) for r in requests)
        input_ids = torch.full((len(requests), longest), self.pad_token_id, dtype=torch.long)
        attention = torch.zeros((len(requests), longest), dtype=torch.long)
        for row, request in enumerate(requests):
            input_ids[row, longest - len(request.prompt_ids) :] = torch.tensor(request.prompt_ids, dtype=torch.long)
            attention[row, longest - len(request.prompt_ids) :] = 1
        max_new = min(max(r.max_tokens for r in requests), self.max_model_len - longest)
        kwargs: dict[str, Any] = {"do_sample": False}
        if not sampling.greedy:
            kwargs = {
                "do_sample": True,
                "temperature": sampling.temperature,
                "top_p": sampling.top_p,
                "top_k": sampling.top_k or None,
            }
        output = self.model.generate(
            input_ids=input_ids,
            attention_mask=attention,
            max_new_tokens=max(1, max_new),
            eos_token_id=self.eos_token_ids,
            pad_token_id=self.pad_token_id,
            return_dict_in_generate=True,
            output_scores=self.logprobs_mode == "processed_logprobs",
            output_logits=self.logprobs_mode == "raw_logprobs",
            **kwargs,
        )
        steps = output.scores if self.logprobs_mode == "processed_logprobs" else output.logits
        new_tokens = output.sequences[:, longest:]
        logprobs = torch.stack(
            [
                torch.log_softmax(step.float(), dim=-1).gather(-1, new_tokens[:, i : i + 1])
                for i, step in enumerate(steps)
            ],
            dim=1,
        ).squeeze(-1)
        eos = set(self.eos_token_ids)
        results = []
        for row, request in enumerate(requests):
            ids: list[int] = []
            finish = "length"
            for position, token in enumerate(new_tokens[row].tolist()):
                if position >= request.max_tokens:
                    break
                ids.append(token)
                if token in eos:
                    finish = "stop"
                    break
            results.append(GenResult(ids, logprobs[row, : len(ids)].tolist(), finish))
        return results

    # --- weights -----------------------------------------------------------------------------------

    def load_weights(self, weights: Iterable[tuple[str, torch.Tensor]]) -> int:
        """Copy named tensors (Hugging Face names, as verl's engines export them) into the model.

        :returns: the number of tensors loaded.
        :raises KeyError: for a name the model does not have (a silent mismatch would train one
            model and serve another).
        """
        loaded = 0
        with self._lock, torch.no_grad():
            for name, tensor in weights:
                target = self._params.get(name)
                if target is None:
                    raise KeyError(f"the rollout model has no parameter {name!r}; is it the actor's model?")
                target.copy_(tensor.to(dtype=target.dtype))
                loaded += 1
            self.weights_version += 1
        return loaded


__all__ = ["LOGPROBS_MODES", "CpuGenerator", "GenRequest", "GenResult", "Sampling"]
