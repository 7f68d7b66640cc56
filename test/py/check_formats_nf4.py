"""Reference side of tsloth's NF4 check against bitsandbytes (driven by test/quant/reference-bnb.test.ts).

    check_formats_nf4.py make OUT
        Random weights quantized with bitsandbytes.functional.quantize_4bit(quant_type="nf4",
        blocksize=64, compress_statistics=True/False) on CPU, saved as OUT/nf4.safetensors: per case
        the input, bitsandbytes' packed weight and quant-state keys (QuantState.as_dict(packed=True),
        the checkpoint format), and dequantize_4bit's output as float32 and in the input's dtype.
        OUT/cases.json lists the cases.
    check_formats_nf4.py read FILE NAMES.json
        A 4-bit checkpoint tsloth wrote: each weight is rebuilt with QuantState.from_dict and
        dequantized by bitsandbytes; the result must equal, bit for bit, the float32
        "<name>.tsloth_dequant" tensor tsloth stored beside it.
"""

import json
import os
import sys

import torch
import bitsandbytes.functional as F
from safetensors import safe_open
from safetensors.torch import save_file

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}

CASES = [
    {"shape": [64, 128], "dtype": "float32", "compress": True},
    {"shape": [64, 128], "dtype": "float32", "compress": False},
    {"shape": [96, 200], "dtype": "bfloat16", "compress": True},   # 300 blocks: a partial nested block
    {"shape": [1000, 64], "dtype": "float16", "compress": True},   # 4 nested blocks
    {"shape": [33, 65], "dtype": "bfloat16", "compress": False},   # partial last block, odd count
    {"shape": [3, 7], "dtype": "float32", "compress": True},       # fewer values than a block
    {"shape": [128, 64], "dtype": "bfloat16", "compress": True},   # zero rows and outliers
]


def make(out: str) -> None:
    torch.manual_seed(2024)
    tensors = {}
    for i, case in enumerate(CASES):
        dtype = DTYPES[case["dtype"]]
        w = (torch.randn(*case["shape"]) * 0.05).to(dtype)
        if i == len(CASES) - 1:
            w[5:9] = 0
            w[20, 3] = 4.0
            w[40, :] = -w[40, :].abs()
        packed, state = F.quantize_4bit(w, blocksize=64, compress_statistics=case["compress"], quant_type="nf4")
        p = f"case{i}"
        tensors[f"{p}.input"] = w.contiguous()
        tensors[f"{p}.weight"] = packed
        for k, v in state.as_dict(packed=True).items():
            tensors[f"{p}.weight.{k}"] = v
        tensors[f"{p}.dequant"] = F.dequantize_4bit(packed, state)
        state.dtype = torch.float32
        tensors[f"{p}.dequant_f32"] = F.dequantize_4bit(packed, state)
    save_file({k: v.contiguous() for k, v in tensors.items()}, os.path.join(out, "nf4.safetensors"))
    with open(os.path.join(out, "cases.json"), "w") as f:
        json.dump(CASES, f)
    print(f"made {len(CASES)} NF4 cases")


def read(path: str, names_path: str) -> None:
    with open(names_path) as f:
        names = json.load(f)
    errors = []
    with safe_open(path, framework="pt") as f:
        keys = set(f.keys())
        for name in names:
            qs = {k[len(name) + 1:]: f.get_tensor(k) for k in keys if k.startswith(name + ".") and not k.endswith("tsloth_dequant")}
            state = F.QuantState.from_dict(qs, device=torch.device("cpu"))
            state.dtype = torch.float32
            got = F.dequantize_4bit(f.get_tensor(name), state)
            want = f.get_tensor(name + ".tsloth_dequant")
            if got.shape != want.shape or not torch.equal(got.view(torch.int32), want.view(torch.int32)):
                diff = (got.float() - want.float()).abs().max().item() if got.shape == want.shape else "shape"
                errors.append(f"{name}: bitsandbytes dequantizes tsloth's checkpoint differently (max diff {diff})")
    if errors:
        print("\n".join(errors))
        sys.exit(1)
    print(f"bitsandbytes read {len(names)} tsloth-written NF4 weights")


if __name__ == "__main__":
    if sys.argv[1] == "make":
        make(sys.argv[2])
    else:
        read(sys.argv[2], sys.argv[3])
