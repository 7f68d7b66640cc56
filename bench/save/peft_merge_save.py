"""Baseline for bench/save/merge-save.ts: the same merged save through transformers + PEFT
(load the bf16 base, PeftModel.from_pretrained the adapter tsloth saved, merge_and_unload,
save_pretrained with 5GB shards). Prints one JSON line: seconds (merge + save, and total) and the
process's peak RSS; then the largest difference from tsloth's merged output on two tensors.

Usage: python peft_merge_save.py BASE_DIR ADAPTER_DIR OUT_DIR TSLOTH_MERGED_DIR
"""

import json
import resource
import sys
import time
import warnings

warnings.filterwarnings("ignore")
t0 = time.perf_counter()
import torch
from peft import PeftModel
from safetensors import safe_open
from transformers import AutoModelForCausalLM

torch.set_num_threads(max(1, torch.get_num_threads()))
base_dir, adapter_dir, out_dir, ours_dir = sys.argv[1:5]
start = time.perf_counter()
model = AutoModelForCausalLM.from_pretrained(base_dir, dtype=torch.bfloat16)
model = PeftModel.from_pretrained(model, adapter_dir)
loaded = time.perf_counter()
merged = model.merge_and_unload()
merged.save_pretrained(out_dir, max_shard_size="5GB")
done = time.perf_counter()
peak_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def tensor(d, name):
    import os
    index = os.path.join(d, "model.safetensors.index.json")
    f = json.load(open(index))["weight_map"][name] if os.path.exists(index) else "model.safetensors"
    with safe_open(os.path.join(d, f), "pt") as s:
        return s.get_tensor(name).float()


diffs = {}
for name in ["model.layers.0.self_attn.q_proj.weight", "model.layers.0.mlp.down_proj.weight"]:
    a, b = tensor(out_dir, name), tensor(ours_dir, name)
    diffs[name] = {"max_abs_diff": (a - b).abs().max().item(), "max_abs": b.abs().max().item(),
                   "share_equal": (a == b).float().mean().item()}
print(json.dumps({"merge_save_seconds": done - loaded, "load_seconds": loaded - start, "total_seconds": done - t0,
                  "peak_rss_bytes": peak_rss, "diff_vs_tsloth": diffs}))
