"""Reference greedy generation with Hugging Face transformers for tsloth's generation tests.

Makes a tiny random Llama (seeded), saves it with save_pretrained (safetensors) into OUT_DIR, runs
transformers' generate (greedy, KV cache, no EOS) for each prompt and prints JSON:
{"prompts": [[ids]], "tokens": [[ids]], "scores": [[[logit per vocab entry] per step] per prompt]}. Device "cuda" runs the model in float32 on the GPU.
  python hf_generate.py OUT_DIR [--new 24] [--device cpu|cuda]
"""
import argparse
import json

import torch
from transformers import LlamaConfig, LlamaForCausalLM

p = argparse.ArgumentParser()
p.add_argument("out")
p.add_argument("--new", type=int, default=24)
p.add_argument("--device", default="cpu")
a = p.parse_args()

torch.manual_seed(1234)
cfg = LlamaConfig(
    vocab_size=96, hidden_size=64, intermediate_size=160, num_hidden_layers=3, num_attention_heads=4,
    num_key_value_heads=2, head_dim=16, max_position_embeddings=256, rms_norm_eps=1e-5, tie_word_embeddings=False,
    initializer_range=0.25, bos_token_id=None, eos_token_id=None, pad_token_id=None,
)
model = LlamaForCausalLM(cfg).eval()
model.save_pretrained(a.out, safe_serialization=True)
model = model.to(a.device)
g = torch.Generator().manual_seed(99)
prompts = [torch.randint(0, cfg.vocab_size, (n,), generator=g).tolist() for n in (5, 13, 1)]
tokens, scores = [], []
with torch.no_grad():
    for ids in prompts:
        x = torch.tensor([ids], device=a.device)
        out = model.generate(x, attention_mask=torch.ones_like(x), max_new_tokens=a.new, min_new_tokens=a.new, do_sample=False,
                             eos_token_id=None, pad_token_id=0, output_scores=True, return_dict_in_generate=True)
        tokens.append(out.sequences[0, len(ids):].tolist())
        scores.append([[round(v, 5) for v in s[0].tolist()] for s in out.scores])
print(json.dumps({"prompts": prompts, "tokens": tokens, "scores": scores}))
