"""Loads libtsloth_cuda.so with ctypes and compares its ops with PyTorch on fresh random inputs.

Tensors are PyTorch CUDA tensors passed by data pointer: the library runs on the same primary
context, so it reads and writes them directly. Every check poisons outputs with NaN first (an
element the kernel forgot to write fails the comparison) and measures ||out - ref|| / ||ref||
against a float64 reference.
"""
import ctypes
import math
import os
import sys

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
LIB_PATH = os.environ.get("TSLOTH_CUDA_LIB", os.path.join(HERE, "..", "build", "libtsloth_cuda.so"))

F32, BF16, F16, U8, I32 = 0, 1, 2, 3, 4
TORCH_DTYPE = {F32: torch.float32, BF16: torch.bfloat16, F16: torch.float16}
CATEGORIES = ["base_weights", "adapters", "optimizer", "activations", "offload_host", "kv_cache", "workspace"]

# bf16 has an 8-bit mantissa (relative rounding 2^-9 ~ 2e-3); results that pass through a few bf16
# roundings land near 3e-3..8e-3. METHOD.md: bf16 operands between 1e-3 and 1e-2.
BF16_TOL = 1.2e-2
F32_TOL = 1e-5

_lib = None


def lib():
    global _lib
    if _lib is None:
        torch.cuda.init()
        # cuBLASLt: let dlopen find the copy PyTorch already loaded (same soname).
        torch.ones(8, 8, device="cuda", dtype=torch.bfloat16) @ torch.ones(8, 8, device="cuda", dtype=torch.bfloat16)
        _lib = ctypes.CDLL(LIB_PATH)
        _lib.tsl_last_error.restype = ctypes.c_char_p
        _lib.tsl_abi_version.restype = ctypes.c_int32
        _lib.tsl_device_count.restype = ctypes.c_int32
    return _lib


def ptr(t):
    return ctypes.c_void_p(0 if t is None else t.data_ptr())


def i64(x):
    return ctypes.c_int64(int(x))


def u64(x):
    return ctypes.c_uint64(int(x))


def f32(x):
    return ctypes.c_float(float(x))


def call(name, *args):
    """Calls a tsl_* function after PyTorch's queued work and waits for the library's stream."""
    torch.cuda.synchronize()
    fn = getattr(lib(), name)
    fn.restype = ctypes.c_int32
    status = fn(*args)
    if status != 0:
        raise RuntimeError(f"{name} returned {status}: {lib().tsl_last_error().decode()}")
    sync = lib().tsl_synchronize()
    if sync != 0:
        raise RuntimeError(f"tsl_synchronize after {name} returned {sync}: {lib().tsl_last_error().decode()}")


def status_of(name, *args):
    fn = getattr(lib(), name)
    fn.restype = ctypes.c_int32
    return fn(*args), lib().tsl_last_error().decode()


def poison(shape, dtype):
    return torch.full(shape, float("nan"), device="cuda", dtype=dtype)


def rel_err(out, ref):
    out = out.detach().double().cpu()
    ref = ref.detach().double().cpu()
    if out.shape != ref.shape:
        return math.inf
    if not torch.isfinite(out).all():
        return math.inf
    denom = ref.norm().item()
    assert denom > 0, "reference is all zeros: the check would prove nothing"
    return (out - ref).norm().item() / denom


class Report:
    """Collects named checks and prints one line each; exit status says whether all passed."""

    def __init__(self, title):
        self.title = title
        self.rows = []

    def check(self, name, out, ref, tol):
        err = rel_err(out, ref)
        ok = err <= tol
        self.rows.append((name, err, tol, ok))
        print(f"  {'ok ' if ok else 'BAD'} {name:<48} rel_err={err:.2e} tol={tol:.0e}", flush=True)
        return ok

    def expect(self, name, cond, detail=""):
        self.rows.append((name, 0.0, 0.0, bool(cond)))
        print(f"  {'ok ' if cond else 'BAD'} {name:<48} {detail}", flush=True)
        return cond

    def finish(self):
        bad = [r for r in self.rows if not r[3]]
        print(f"{self.title}: {len(self.rows) - len(bad)}/{len(self.rows)} passed", flush=True)
        sys.exit(1 if bad else 0)


def run(title, fn):
    """Runs one test module's checks; an exception counts as a failure with its message."""
    seed = int.from_bytes(os.urandom(4), "little")
    torch.manual_seed(seed)
    rep = Report(title)
    print(f"{title} (seed {seed})", flush=True)
    try:
        fn(rep)
    except Exception as e:  # noqa: BLE001 - report every failure, keep going to the summary
        import traceback

        traceback.print_exc()
        rep.expect("no exception", False, repr(e))
    rep.finish()
