"""Reference side of tsloth's model-file checks (driven by test/formats/reference-models.test.ts).

    check_formats_models.py make OUT        tiny random Llama / Mistral / Qwen2 / Qwen3 saved by
                                            transformers, each with expected.json (config fields,
                                            per-tensor dtype, shape, sha256 of bytes and of f32 values)
    check_formats_models.py verify DIR      files tsloth wrote (DIR/manifest.json) read back by the
                                            `safetensors` package, and a sharded Llama tsloth wrote
                                            loaded by transformers' from_pretrained
Exits non-zero with one line per mismatch.
"""

import hashlib
import json
import os
import sys

import torch
from safetensors import safe_open
from transformers import AutoModelForCausalLM, LlamaConfig, MistralConfig, Qwen2Config, Qwen3Config

SAFETENSORS_DTYPE = {
    torch.float32: "F32", torch.float16: "F16", torch.bfloat16: "BF16", torch.float64: "F64",
    torch.uint8: "U8", torch.int8: "I8", torch.int16: "I16", torch.int32: "I32", torch.int64: "I64",
    torch.bool: "BOOL", torch.uint16: "U16", torch.uint32: "U32", torch.uint64: "U64",
    torch.float8_e4m3fn: "F8_E4M3", torch.float8_e5m2: "F8_E5M2",
}


def raw_bytes(t: torch.Tensor) -> bytes:
    t = t.detach().contiguous().cpu()
    if t.numel() == 0:
        return b""
    return t.reshape(-1).view(torch.uint8).numpy().tobytes()


def sha(b: bytes) -> str:
    return hashlib.sha256(b).hexdigest()


COMMON = dict(vocab_size=96, hidden_size=32, intermediate_size=48, num_hidden_layers=2,
              num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=64)

MODELS = {
    "llama": (LlamaConfig, dict(COMMON, tie_word_embeddings=False, rope_theta=500000.0,
                                rope_scaling={"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0,
                                              "high_freq_factor": 4.0, "original_max_position_embeddings": 32}),
              torch.bfloat16, None),
    "llama-sharded": (LlamaConfig, dict(COMMON, tie_word_embeddings=True), torch.float32, "20KB"),
    "mistral": (MistralConfig, dict(COMMON, rope_theta=1e6), torch.float16, None),
    "qwen2": (Qwen2Config, dict(COMMON, tie_word_embeddings=True, rope_theta=1e6), torch.bfloat16, None),
    "qwen3": (Qwen3Config, dict(COMMON, head_dim=16, tie_word_embeddings=False), torch.bfloat16, None),
}


def make(out: str) -> None:
    for i, (name, (cls, kwargs, dtype, shard)) in enumerate(MODELS.items()):
        torch.manual_seed(100 + i)
        config = cls(**kwargs)
        model = AutoModelForCausalLM.from_config(config).to(dtype)
        with torch.no_grad():
            # Random biases and norms, so a reader that drops or zeroes them is caught.
            for pname, p in model.named_parameters():
                if pname.endswith("bias") or "norm" in pname:
                    p.copy_(torch.randn_like(p))
        d = os.path.join(out, name)
        model.save_pretrained(d, safe_serialization=True, **({"max_shard_size": shard} if shard else {}))
        tensors = {}
        saved_names = set()
        for fname in os.listdir(d):
            if fname.endswith(".safetensors"):
                with safe_open(os.path.join(d, fname), framework="pt") as f:
                    saved_names.update(f.keys())
        state = model.state_dict()
        for key in sorted(saved_names):
            t = state[key]
            tensors[key] = {"dtype": SAFETENSORS_DTYPE[t.dtype], "shape": list(t.shape),
                            "sha256": sha(raw_bytes(t)), "f32_sha256": sha(raw_bytes(t.float()))}
        c = model.config
        expected = {
            "config": {
                "family": c.model_type, "hiddenSize": c.hidden_size, "intermediateSize": c.intermediate_size,
                "numLayers": c.num_hidden_layers, "numHeads": c.num_attention_heads,
                "numKvHeads": c.num_key_value_heads,
                "headDim": getattr(c, "head_dim", None) or c.hidden_size // c.num_attention_heads,
                "vocabSize": c.vocab_size, "rmsNormEps": c.rms_norm_eps,
                "tieWordEmbeddings": bool(c.tie_word_embeddings),
                "attentionBias": any(k.endswith("q_proj.bias") for k in saved_names),
                "outputBias": any(k.endswith("o_proj.bias") for k in saved_names),
                "qkNorm": any(k.endswith("q_norm.weight") for k in saved_names),
                "maxPositionEmbeddings": c.max_position_embeddings,
            },
            "ropeTheta": float(c.rope_parameters["rope_theta"]) if getattr(c, "rope_parameters", None) else float(c.rope_theta),
            "tensors": tensors,
            "sharded": shard is not None,
        }
        with open(os.path.join(d, "expected.json"), "w") as f:
            json.dump(expected, f, indent=1)
    print("made", ", ".join(MODELS))


def verify(d: str) -> None:
    with open(os.path.join(d, "manifest.json")) as f:
        manifest = json.load(f)
    errors = []
    for entry in manifest["files"]:
        path = os.path.join(d, entry["file"])
        with safe_open(path, framework="pt") as f:
            if (f.metadata() or {}) != entry.get("metadata", {}):
                errors.append(f"{path}: metadata {f.metadata()} != {entry.get('metadata')}")
            names = set(f.keys())
            if names != set(entry["tensors"]):
                errors.append(f"{path}: tensors {sorted(names)} != {sorted(entry['tensors'])}")
            for name, want in entry["tensors"].items():
                if name not in names:
                    continue
                t = f.get_tensor(name)
                got = {"dtype": SAFETENSORS_DTYPE[t.dtype], "shape": list(t.shape), "sha256": sha(raw_bytes(t))}
                if got != want:
                    errors.append(f"{path}: tensor {name}: safetensors read {got}, tsloth wrote {want}")
    if "hf_model_dir" in manifest:
        md = os.path.join(d, manifest["hf_model_dir"])
        model = AutoModelForCausalLM.from_pretrained(md, dtype="auto")
        state = model.state_dict()
        for name, want in manifest["hf_model_tensors"].items():
            got = sha(raw_bytes(state[name]))
            if got != want:
                errors.append(f"{md}: transformers loaded {name} with different bytes")
    if errors:
        print("\n".join(errors))
        sys.exit(1)
    print(f"verified {len(manifest['files'])} files" + (" and a sharded model" if "hf_model_dir" in manifest else ""))


if __name__ == "__main__":
    cmd, arg = sys.argv[1], sys.argv[2]
    {"make": make, "verify": verify}[cmd](arg)
