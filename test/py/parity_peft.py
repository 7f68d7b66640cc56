"""Reference for tsloth's engine: transformers + peft compute the loss and every LoRA gradient
of tiny random Llama / Qwen2 / Qwen3 models, and write everything tsloth needs to compute the same
(weights, adapters, a batch, the results) under OUT_DIR/<family>/.

Two base variants per family:
  dense: the checkpoint's bf16 weights, used as they are (computed in float32);
  nf4:   each decoder linear replaced by bitsandbytes' dequantize_4bit(quantize_4bit(W)) with
         blocksize 64 and double quantization, which is what tsloth computes with after loading
         the same checkpoint in 4-bit, or after loading OUT_DIR/<family>/bnb, the checkpoint
         transformers writes for the model loaded with load_in_4bit.

LoRA B is made non-zero (PEFT initializes it to zero) so that both A and B get gradients.
The loss is the mean over target tokens of two sequences of different lengths, prompt tokens
masked with -100, computed per sequence (no padding) and summed, as tsloth packs them.

Usage: python parity_peft.py OUT_DIR
"""

import json
import os
import sys
import warnings

warnings.filterwarnings("ignore")

import torch
import bitsandbytes.functional as bnbf
from peft import LoraConfig, get_peft_model
from safetensors.torch import save_file
from transformers import AutoModelForCausalLM, BitsAndBytesConfig, LlamaConfig, Qwen2Config, Qwen3Config

TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
COMMON = dict(hidden_size=64, intermediate_size=96, num_hidden_layers=2, num_attention_heads=4,
              num_key_value_heads=2, vocab_size=128, max_position_embeddings=256, rms_norm_eps=1e-5)


def make_config(family):
    if family == "llama":
        return LlamaConfig(**COMMON, tie_word_embeddings=True,
                           rope_scaling={"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0,
                                         "high_freq_factor": 4.0, "original_max_position_embeddings": 64},
                           rope_theta=10000.0)
    if family == "qwen2":
        return Qwen2Config(**COMMON, tie_word_embeddings=False, rope_theta=10000.0)
    return Qwen3Config(**COMMON, head_dim=16, tie_word_embeddings=True, rope_theta=10000.0)


def build(family, out):
    torch.manual_seed({"llama": 1, "qwen2": 2, "qwen3": 3}[family])
    config = make_config(family)
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32, attn_implementation="eager")
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "norm" in name:
                p.copy_(1 + 0.1 * torch.randn_like(p))
            elif "bias" in name:
                p.copy_(0.1 * torch.randn_like(p))
            else:
                p.copy_(0.15 * torch.randn_like(p))
            # The checkpoint is bf16: make the float32 reference use exactly those values.
            p.copy_(p.to(torch.bfloat16).to(torch.float32))
    base_dir = os.path.join(out, "base")
    model.to(torch.bfloat16).save_pretrained(base_dir, safe_serialization=True)
    # The same model as transformers saves it after load_in_4bit (bitsandbytes' checkpoint layout),
    # for tsloth's pre-quantized loading path.
    bnb = BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True,
                             bnb_4bit_compute_dtype=torch.float32)
    AutoModelForCausalLM.from_pretrained(base_dir, quantization_config=bnb, dtype=torch.float32,
                                         device_map="cpu").save_pretrained(os.path.join(out, "bnb"))
    # The reference reads the checkpoint back in float32, as a user's code would (this also gives
    # fresh float32 RoPE buffers rather than ones rounded through bf16 by the save above).
    return AutoModelForCausalLM.from_pretrained(base_dir, dtype=torch.float32, attn_implementation="eager")


def batch(vocab):
    g = torch.Generator().manual_seed(7)
    seqs = [torch.randint(0, vocab, (13,), generator=g), torch.randint(0, vocab, (9,), generator=g)]
    labels = []
    for s, prompt in zip(seqs, [5, 3]):
        l = s.clone()
        l[:prompt] = -100
        labels.append(l)
    return seqs, labels


def loss_and_grads(model, seqs, labels):
    model.zero_grad()
    total, count = 0.0, 0
    losses = []
    for s, l in zip(seqs, labels):
        logits = model(input_ids=s[None]).logits[0].float()
        shift_logits, shift_labels = logits[:-1], l[1:]
        losses.append(torch.nn.functional.cross_entropy(shift_logits, shift_labels, ignore_index=-100, reduction="sum"))
        count += int((shift_labels != -100).sum())
    loss = sum(losses) / count
    loss.backward()
    grads = {}
    for name, p in model.named_parameters():
        if "lora_" in name:
            key = name.replace(".default", "")
            grads[key] = p.grad.detach().clone().contiguous()
    return float(loss), count, grads


def bf16_gaps(model, seqs, labels, loss, grads):
    """How far PyTorch itself lands from its float32 results when it computes in bf16 (autocast: bf16
    matmul inputs and outputs, float32 accumulation, as on a GPU): the yardstick for a bf16 backend."""
    with torch.autocast("cpu", dtype=torch.bfloat16):
        loss16, _, grads16 = loss_and_grads(model, seqs, labels)
    rel = {k: float((grads16[k].float() - g).norm() / g.norm()) for k, g in grads.items()}
    return {"loss_gap": abs(loss16 - loss) / abs(loss), "grad_rel_l2": rel}


def nf4_roundtrip(w):
    # Quantized as rows of one block each: the same flattening and the same bytes as quantizing W
    # itself, but bitsandbytes 0.50's CPU dequantize_4bit mis-scales weights whose rows are not a
    # multiple of the block size (down_proj here: 96 columns), so give it whole-block rows.
    blocks = w.contiguous().reshape(-1, 64)
    q, state = bnbf.quantize_4bit(blocks, blocksize=64, compress_statistics=True, quant_type="nf4")
    return bnbf.dequantize_4bit(q, state).to(torch.float32).reshape(w.shape)


def run(family, root):
    out = os.path.join(root, family)
    os.makedirs(out, exist_ok=True)
    model = build(family, out)
    lora = LoraConfig(r=4, lora_alpha=8, target_modules=TARGETS, lora_dropout=0.0, bias="none", task_type="CAUSAL_LM")
    peft_model = get_peft_model(model, lora)
    g = torch.Generator().manual_seed(11)
    with torch.no_grad():
        for name, p in peft_model.named_parameters():
            if "lora_B" in name:
                p.copy_(0.1 * torch.randn(p.shape, generator=g))
    peft_model.save_pretrained(os.path.join(out, "adapter"), safe_serialization=True)
    seqs, labels = batch(model.config.vocab_size)
    result = {"sequences": [s.tolist() for s in seqs], "labels": [l.tolist() for l in labels]}

    loss, count, grads = loss_and_grads(peft_model, seqs, labels)
    save_file(grads, os.path.join(out, "grads_dense.safetensors"))
    result["dense"] = {"loss": loss, "count": count, "bf16": bf16_gaps(peft_model, seqs, labels, loss, grads)}

    with torch.no_grad():
        for name, module in peft_model.named_modules():
            if hasattr(module, "base_layer") and isinstance(module.base_layer, torch.nn.Linear):
                module.base_layer.weight.copy_(nf4_roundtrip(module.base_layer.weight))
    loss, count, grads = loss_and_grads(peft_model, seqs, labels)
    save_file(grads, os.path.join(out, "grads_nf4.safetensors"))
    result["nf4"] = {"loss": loss, "count": count, "bf16": bf16_gaps(peft_model, seqs, labels, loss, grads)}
    with open(os.path.join(out, "reference.json"), "w") as f:
        json.dump(result, f)


def main():
    root = sys.argv[1]
    for family in ["llama", "qwen2", "qwen3"]:
        run(family, root)
    print("parity references written to", root)


if __name__ == "__main__":
    main()
