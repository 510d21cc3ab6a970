"""A tiny chat model built on the spot: random weights, a tokenizer trained here. No hub downloads.

    python examples/verl_math/tiny_model.py /tmp/agl-tiny-qwen2

Writes a Hugging Face model directory (Qwen2 architecture, about 0.4 M parameters, safetensors)
with a byte-level BPE tokenizer trained on arithmetic text and a ChatML chat template that
renders tool calls the way vLLM's ``hermes`` parser reads them. verl and vLLM load it like any
downloaded model, which is what the reproduction script (``run_tiny_gpu.sh``) needs: the whole
pipeline, quickly, offline. It learns nothing useful; the point is that every part runs.
"""

from __future__ import annotations

import argparse
import random
from pathlib import Path

SPECIAL = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<tool_call>", "</tool_call>"]

# ChatML with tools in the hermes format (what vLLM's hermes tool parser expects).
CHAT_TEMPLATE = (
    "{% if tools %}<|im_start|>system\n"
    "{% if messages[0].role == 'system' %}{{ messages[0].content }}\n{% endif %}"
    "Tools: {{ tools | tojson }}\n"
    'Call one as <tool_call>{"name": ..., "arguments": ...}</tool_call><|im_end|>\n'
    "{% endif %}"
    "{% for message in messages %}"
    "{% if not (tools and loop.first and message.role == 'system') %}"
    "<|im_start|>{{ message.role }}\n"
    "{% if message.content %}{{ message.content }}{% endif %}"
    '{% for call in message.tool_calls or [] %}<tool_call>{"name": "{{ call.function.name }}", '
    '"arguments": {{ call.function.arguments }}}</tool_call>{% endfor %}'
    "<|im_end|>\n"
    "{% endif %}"
    "{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


def corpus(lines: int, seed: int = 0) -> list[str]:
    """Arithmetic dialogue text to train the tokenizer on."""
    rng = random.Random(seed)
    words = ["What", "is", "the", "answer", "Answer:", "Solve", "calculate", "expression", "tool", "result"]
    text = []
    for _ in range(lines):
        a, b, c = rng.randint(0, 999), rng.randint(0, 999), rng.randint(0, 9)
        text.append(f"{rng.choice(words)} ({a} + {b}) * {c} = {(a + b) * c}. {' '.join(rng.sample(words, 4))}")
    return text


def build(
    directory: Path, *, hidden: int = 128, layers: int = 2, vocab: int = 1024, model_vocab: int | None = None
) -> Path:
    """Write the tokenizer and the randomly initialised model to ``directory``.

    :param model_vocab: rows of the embedding when more than the tokenizer's vocabulary (models pad
        it; tests that train on another tokenizer's ids need room for them)."""
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast, Qwen2Config, Qwen2ForCausalLM

    directory.mkdir(parents=True, exist_ok=True)
    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab, special_tokens=SPECIAL, initial_alphabet=pre_tokenizers.ByteLevel.alphabet()
    )
    bpe.train_from_iterator(corpus(4000), trainer=trainer)
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=bpe,
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        additional_special_tokens=["<|im_start|>", "<tool_call>", "</tool_call>"],
    )
    tokenizer.chat_template = CHAT_TEMPLATE
    tokenizer.save_pretrained(directory)

    torch.manual_seed(0)
    config = Qwen2Config(
        vocab_size=max(len(tokenizer), model_vocab or 0),
        hidden_size=hidden,
        intermediate_size=hidden * 2,
        num_hidden_layers=layers,
        num_attention_heads=2,  # head_dim 64: a size every attention backend supports
        num_key_value_heads=1,
        max_position_embeddings=4096,
        tie_word_embeddings=True,
        bos_token_id=tokenizer.convert_tokens_to_ids("<|endoftext|>"),
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        torch_dtype="bfloat16",
    )
    model = Qwen2ForCausalLM(config)
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.save_pretrained(directory, safe_serialization=True)
    return directory


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("directory", type=Path)
    args = parser.parse_args()
    print(build(args.directory))


if __name__ == "__main__":
    main()
