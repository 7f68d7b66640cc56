#!/usr/bin/env python3
"""Baseline for tsloth's generation benchmark: HF transformers `generate` on a random-init Llama shape
in bf16 (SDPA), greedy, with the static KV cache (cache_implementation="static", no torch.compile)
and the default dynamic cache. Prints one JSON line per cache: prefill tokens/s (time to the first
token), decode tokens/s (the rest), peak allocated GiB.
  python3 hf_generate_baseline.py --shape 8B [--batch 1,8] [--prompt 512] [--new 128]
"""
import argparse
import json
import time

import torch
from transformers import LlamaConfig, LlamaForCausalLM

SHAPES = {
    '1B': dict(hidden_size=2048, num_hidden_layers=16, num_attention_heads=32, num_key_value_heads=8,
               intermediate_size=8192, vocab_size=128256, tie_word_embeddings=True),
    '8B': dict(hidden_size=4096, num_hidden_layers=32, num_attention_heads=32, num_key_value_heads=8,
               intermediate_size=14336, vocab_size=128256, tie_word_embeddings=False),
}


def timed(model, x, new, cache):
    kw = dict(max_new_tokens=new, min_new_tokens=new, do_sample=False, pad_token_id=0, eos_token_id=None)
    if cache:
        kw['cache_implementation'] = cache
    torch.cuda.synchronize()
    t0 = time.perf_counter()
    model.generate(x, attention_mask=torch.ones_like(x), max_new_tokens=1, min_new_tokens=1, do_sample=False,
                   pad_token_id=0, eos_token_id=None, **({'cache_implementation': cache} if cache else {}))
    torch.cuda.synchronize()
    first = time.perf_counter() - t0
    t0 = time.perf_counter()
    model.generate(x, attention_mask=torch.ones_like(x), **kw)
    torch.cuda.synchronize()
    total = time.perf_counter() - t0
    return first, total


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--shape', default='1B', choices=sorted(SHAPES))
    ap.add_argument('--batch', default='1,8', help='comma-separated batch sizes')
    ap.add_argument('--prompt', type=int, default=512)
    ap.add_argument('--new', type=int, default=128)
    ap.add_argument('--caches', default='static,dynamic', help='comma-separated: static, dynamic')
    a = ap.parse_args()
    torch.manual_seed(0)
    cfg = LlamaConfig(**SHAPES[a.shape], max_position_embeddings=131072, rope_theta=500000.0, attn_implementation='sdpa')
    with torch.device('cuda'):
        model = LlamaForCausalLM(cfg).to(torch.bfloat16).eval()
    for batch in [int(b) for b in a.batch.split(',')]:
        x = torch.randint(0, cfg.vocab_size, (batch, a.prompt), device='cuda')
        run_caches(model, x, a, batch)


def run_caches(model, x, a, batch):
    for cache in [None if c == 'dynamic' else c for c in a.caches.split(',')]:
        try:
            timed(model, x, 8, cache)  # warm-up
            torch.cuda.reset_peak_memory_stats()
            first, total = timed(model, x, a.new, cache)
            decode = max(total - first, 1e-9)
            print(json.dumps(dict(impl=f"hf-transformers bf16 {cache or 'dynamic'} cache", shape=a.shape, batch=batch,
                                  prompt=a.prompt, new_tokens=a.new,
                                  prefill_tokens_per_s=round(batch * a.prompt / first),
                                  decode_tokens_per_s=round(batch * (a.new - 1) / decode),
                                  decode_step_ms=round(1000 * decode / (a.new - 1), 3),
                                  peak_gib=round(torch.cuda.max_memory_allocated() / 2**30, 2),
                                  gpu=torch.cuda.get_device_name())), flush=True)
        except Exception as e:  # noqa: BLE001 - one cache failing should not hide the other
            print(json.dumps(dict(impl=f"hf-transformers bf16 {cache or 'dynamic'} cache", shape=a.shape, error=repr(e)[:300])), flush=True)


if __name__ == '__main__':
    main()
