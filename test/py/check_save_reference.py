"""Checks tsloth's saved models with the libraries users load them with.

  merged_16bit: transformers.AutoModelForCausalLM loads the directory; its last-token logits for
                the probe ids match the logits tsloth computed from the same directory.
  lora:         peft.PeftModel.from_pretrained puts the adapter on the base model; its logits match
                the logits of tsloth's model with those adapters (16-bit base).
  merged_4bit:  transformers loads the bitsandbytes 4-bit directory (when bitsandbytes can run it
                on this machine); every 4-bit weight is bit-identical to bitsandbytes' own
                quantization of the merged 16-bit weight, and the logits (bitsandbytes computes in
                bfloat16 here) match tsloth's 4-bit reload within bfloat16 tolerance.

Usage: python check_save_reference.py SPEC.json
SPEC: {"ids": [...], "base": DIR, "checks": [{"kind": "merged_16bit"|"lora"|"merged_4bit", "dir": DIR,
        "tsloth_logits": [...], "tolerance": float}]}
Prints one JSON object per check: {"kind", "max_abs_diff", "max_abs", "ok"} or {"kind", "skipped": why}.
Exits 1 if any check fails.
"""

import json
import sys
import warnings

warnings.filterwarnings("ignore")

import torch
from transformers import AutoModelForCausalLM


def last_logits(model, ids):
    with torch.no_grad():
        out = model(input_ids=torch.tensor([ids]))
    return out.logits[0, -1].float()


def load(path, **kw):
    return AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32, attn_implementation="eager", **kw).eval()


def run(check, spec):
    kind = check["kind"]
    if kind == "merged_16bit":
        model = load(check["dir"])
        cfg = json.load(open(f"{check['dir']}/config.json"))
        assert "quantization_config" not in cfg, "merged_16bit config.json must not carry a quantization config"
    elif kind == "lora":
        from peft import PeftModel
        model = PeftModel.from_pretrained(load(spec["base"]), check["dir"]).eval()
    elif kind == "merged_4bit":
        try:
            cfg = json.load(open(f"{check['dir']}/config.json"))["quantization_config"]
            assert cfg["quant_method"] == "bitsandbytes" and cfg["bnb_4bit_quant_type"] == "nf4" and cfg["load_in_4bit"], cfg
            model = AutoModelForCausalLM.from_pretrained(check["dir"], attn_implementation="eager").eval()
        except Exception as e:  # bitsandbytes without a usable backend on this machine
            return {"kind": kind, "skipped": f"transformers could not load the 4-bit model here: {type(e).__name__}: {e}"[:300]}
    else:
        raise ValueError(kind)
    result = {"kind": kind}
    if kind == "merged_4bit":
        result["quantized_like_bitsandbytes"] = same_as_bnb_quantization(model, check["merged16_dir"])
    ref = last_logits(model, spec["ids"])
    ours = torch.tensor(check["tsloth_logits"], dtype=torch.float32)
    diff = (ref - ours).abs().max().item()
    result.update(max_abs_diff=diff, max_abs=ref.abs().max().item())
    result["ok"] = diff <= check["tolerance"] and result.get("quantized_like_bitsandbytes", True)
    return result


def same_as_bnb_quantization(model, merged16_dir):
    """Every 4-bit weight equals bitsandbytes' quantize_4bit (nf4, block 64, double quant) of the merged 16-bit weight."""
    import glob
    import bitsandbytes.functional as F
    from safetensors.torch import load_file
    w16 = {}
    for f in glob.glob(f"{merged16_dir}/*.safetensors"):
        w16.update(load_file(f))
    checked = 0
    for name, p in model.named_parameters():
        if p.dtype != torch.uint8:
            continue
        q, state = F.quantize_4bit(w16[name], blocksize=64, quant_type="nf4", compress_statistics=True)
        if not torch.equal(q.flatten(), p.data.flatten()):
            return False
        if not torch.equal(F.dequantize_4bit(q, state), F.dequantize_4bit(p.data, p.quant_state)):
            return False
        checked += 1
    return checked > 0


def main():
    spec = json.load(open(sys.argv[1]))
    ok = True
    for check in spec["checks"]:
        result = run(check, spec)
        ok = ok and result.get("ok", True)
        print(json.dumps(result), flush=True)
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
