"""Writes a random-init Llama checkpoint in the Hugging Face hub cache layout
(CACHE/models--ORG--NAME/{refs/main, snapshots/<sha>/...}), with the embedded model's tokenizer, so
the GPU notebook test loads a real-format checkpoint "from the cache" on a machine with no network.

  python3 make_cached_checkpoint.py CACHE_DIR ORG/NAME
"""
import os
import shutil
import sys

import torch
from transformers import LlamaConfig, LlamaForCausalLM

HERE = os.path.dirname(os.path.abspath(__file__))
TINY = os.path.join(HERE, "..", "..", "assets", "tsloth-tiny")
SNAPSHOT = "0123456789abcdef0123456789abcdef01234567"


def main(cache: str, repo_id: str) -> None:
    org, name = repo_id.split("/")
    root = os.path.join(cache, f"models--{org}--{name}")
    snap = os.path.join(root, "snapshots", SNAPSHOT)
    os.makedirs(snap, exist_ok=True)
    os.makedirs(os.path.join(root, "refs"), exist_ok=True)
    with open(os.path.join(root, "refs", "main"), "w") as f:
        f.write(SNAPSHOT)
    torch.manual_seed(0)
    # A mid-size shape (90M parameters) with the tiny tokenizer's vocabulary.
    config = LlamaConfig(vocab_size=1024, hidden_size=1024, intermediate_size=2816, num_hidden_layers=8,
                         num_attention_heads=16, num_key_value_heads=4, max_position_embeddings=4096,
                         rope_theta=500000.0, tie_word_embeddings=False, bos_token_id=0, eos_token_id=[1, 4], pad_token_id=2)
    config.architectures = ["LlamaForCausalLM"]
    LlamaForCausalLM(config).to(torch.bfloat16).save_pretrained(snap, safe_serialization=True)
    for f in ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"):
        shutil.copy(os.path.join(TINY, f), os.path.join(snap, f))
    print("wrote", snap)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
