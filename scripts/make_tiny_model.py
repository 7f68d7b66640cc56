"""Builds assets/tsloth-tiny (a tiny pre-trained Llama in Hugging Face format) and
assets/tsloth-tiny-data.jsonl, deterministically.

    .venv/bin/python scripts/make_tiny_model.py [--out assets] [--steps 1500]

1. Trains a byte-level BPE tokenizer (Python `tokenizers`) on the project's corpus (tiny_corpus.py).
2. Pre-trains a LlamaForCausalLM (hidden 64, 2 layers, 4 heads, 2 kv heads, tied embeddings) on CPU
   for a minute or two with transformers, single-threaded and seeded so the weights are reproducible.
3. Saves it with save_pretrained (safetensors, bf16) plus tokenizer files with a ChatML-like template.
The outputs are committed; CI only checks that they are consistent.
"""

import argparse
import json
import math
import os
import random
import sys
import time

import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

sys.dont_write_bytecode = True  # keep scripts/ free of __pycache__
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from tiny_corpus import FORBIDDEN_WORDS, build_corpus  # noqa: E402
from tiny_dataset import write_dataset  # noqa: E402

SEED = 1234
VOCAB_SIZE = 1024
BOS, EOS, PAD = "<|begin_of_text|>", "<|end_of_text|>", "<|pad|>"
IM_START, IM_END = "<|im_start|>", "<|im_end|>"
SPECIAL_TOKENS = [BOS, EOS, PAD, IM_START, IM_END]

# ChatML-style turns; the text starts with BOS so chats are tokenized without adding special tokens.
CHAT_TEMPLATE = (
    "{{ bos_token }}"
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)


def train_tokenizer(texts: list[str]) -> Tokenizer:
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=VOCAB_SIZE,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(texts, trainer=trainer)
    bos_id = tok.token_to_id(BOS)
    tok.post_processor = processors.TemplateProcessing(
        single=f"{BOS} $A", pair=f"{BOS} $A {BOS} $B", special_tokens=[(BOS, bos_id)]
    )
    return tok


def render_chat(messages: list[dict]) -> str:
    text = BOS
    for m in messages:
        text += f"{IM_START}{m['role']}\n{m['content']}{IM_END}\n"
    return text


def write_tokenizer_files(tok: Tokenizer, out: str) -> dict:
    tok.save(os.path.join(out, "tokenizer.json"))
    ids = {t: tok.token_to_id(t) for t in SPECIAL_TOKENS}
    added = {
        str(ids[t]): {"content": t, "lstrip": False, "normalized": False, "rstrip": False,
                      "single_word": False, "special": True}
        for t in SPECIAL_TOKENS
    }
    config = {
        "added_tokens_decoder": added,
        "bos_token": BOS,
        "eos_token": IM_END,
        "pad_token": PAD,
        "additional_special_tokens": [IM_START, IM_END],
        "chat_template": CHAT_TEMPLATE,
        "clean_up_tokenization_spaces": False,
        "model_max_length": 512,
        "padding_side": "right",
        "tokenizer_class": "PreTrainedTokenizerFast",
    }
    with open(os.path.join(out, "tokenizer_config.json"), "w") as f:
        json.dump(config, f, indent=2, ensure_ascii=False)
        f.write("\n")
    with open(os.path.join(out, "special_tokens_map.json"), "w") as f:
        json.dump({"bos_token": BOS, "eos_token": IM_END, "pad_token": PAD,
                   "additional_special_tokens": [IM_START, IM_END]}, f, indent=2)
        f.write("\n")
    return ids


def pretrain(model: LlamaForCausalLM, stream: list[int], steps: int, seq: int, batch: int) -> None:
    data = torch.tensor(stream, dtype=torch.long)
    gen = torch.Generator().manual_seed(SEED)
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3, betas=(0.9, 0.95), weight_decay=0.01)
    warmup = max(1, steps // 20)
    model.train()
    start = time.time()
    for step in range(steps):
        lr = 3e-3 * min(1.0, (step + 1) / warmup) * 0.5 * (1 + math.cos(math.pi * step / steps))
        for g in opt.param_groups:
            g["lr"] = max(lr, 1e-4)
        starts = torch.randint(0, len(stream) - seq - 1, (batch,), generator=gen)
        x = torch.stack([data[s:s + seq] for s in starts.tolist()])
        loss = model(input_ids=x, labels=x).loss
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        if step % 100 == 0 or step == steps - 1:
            print(f"step {step:5d}  loss {loss.item():.3f}  {time.time() - start:.0f}s", flush=True)


def unseen_token_snippets(tok: Tokenizer, stream: list[int], specials: set[int], eos: int) -> list[int]:
    """Short snippets that put every vocabulary token into the pre-training stream at least 20 times.

    BPE keeps intermediate merges (' li', 'os', ...) that never surface when the corpus itself is
    encoded; their embeddings, tied to the output layer, would stay at their random init and no LoRA
    could make the model emit them, yet the fine-tuning answers need some of them.
    """
    seen = set(stream)
    fillers = ["cat", "dog", "sun", "tree", "river", "stone", "bird", "rain"]
    rng = random.Random(SEED + 1)
    out: list[int] = []
    for token_id in range(tok.get_vocab_size()):
        if token_id in seen or token_id in specials:
            continue
        for _ in range(20):
            left = tok.encode(f"The {rng.choice(fillers)} ", add_special_tokens=False).ids
            right = tok.encode(f" {rng.choice(fillers)}.", add_special_tokens=False).ids
            out += left + [token_id] + right + [eos]
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "..", "assets"))
    ap.add_argument("--steps", type=int, default=1500)
    args = ap.parse_args()
    random.seed(SEED)
    torch.manual_seed(SEED)
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)

    docs, chats = build_corpus(SEED, documents=12000)
    rendered = [render_chat(c) for c in chats]
    for text in docs + rendered:
        for word in FORBIDDEN_WORDS:
            if word.lower() in text.lower():
                raise SystemExit(f"corpus mentions '{word}', which the fine-tuning dataset teaches")

    model_dir = os.path.join(args.out, "tsloth-tiny")
    os.makedirs(model_dir, exist_ok=True)
    tok = train_tokenizer(docs + [c["content"] for chat in chats for c in chat])
    ids = write_tokenizer_files(tok, model_dir)

    stream: list[int] = []
    items = [("doc", d) for d in docs] + [("chat", c) for c in rendered]
    random.Random(SEED).shuffle(items)
    for kind, text in items:
        if kind == "doc":
            stream += tok.encode(text).ids + [ids[EOS]]
        else:
            stream += tok.encode(text, add_special_tokens=False).ids
    stream += unseen_token_snippets(tok, stream, set(ids.values()), ids[EOS])
    print(f"corpus: {len(docs)} documents, {len(chats)} chats, {len(stream)} tokens")

    config = LlamaConfig(
        vocab_size=tok.get_vocab_size(),
        hidden_size=64,
        intermediate_size=192,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=512,
        rms_norm_eps=1e-5,
        rope_theta=10000.0,
        tie_word_embeddings=True,
        bos_token_id=ids[BOS],
        eos_token_id=[ids[EOS], ids[IM_END]],
        pad_token_id=ids[PAD],
        initializer_range=0.02,
    )
    config.architectures = ["LlamaForCausalLM"]
    model = LlamaForCausalLM(config)
    pretrain(model, stream, args.steps, seq=128, batch=32)

    model = model.to(torch.bfloat16)
    model.generation_config.bos_token_id = ids[BOS]
    model.generation_config.eos_token_id = [ids[EOS], ids[IM_END]]
    model.generation_config.pad_token_id = ids[PAD]
    model.save_pretrained(model_dir, safe_serialization=True)
    os.chmod(os.path.join(model_dir, "model.safetensors"), 0o644)

    hf_tok = PreTrainedTokenizerFast.from_pretrained(model_dir)
    prompt = hf_tok("The weather was", return_tensors="pt", add_special_tokens=True)
    model.eval()
    with torch.no_grad():
        out = model.float().generate(**prompt, max_new_tokens=24, do_sample=False)
    print("sample:", hf_tok.decode(out[0], skip_special_tokens=True))

    write_dataset(os.path.join(args.out, "tsloth-tiny-data.jsonl"))
    print("wrote", model_dir)


if __name__ == "__main__":
    main()
