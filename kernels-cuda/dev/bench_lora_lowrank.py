"""GPU time of the LoRA update y += s · u · fᵀ at the 8B shapes (T = 8192, r = 16): tsl_lora_up_acc
against cuBLASLt through tsl_gemm (beta = 1) on the same operands, each as % of the card's copy rate
(y read + written / time). One JSON line per shape. (A tensor-core twin of the skinny x·aᵀ lost to
cuBLASLt here on an H100: 69-73% of copy against 84-95%; the kernel was dropped.)
   python3 kernels-cuda/dev/bench_lora_lowrank.py"""
import ctypes
import json
import os
import sys

import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "test"))
from common import BF16, f32, i64, lib, ptr  # noqa: E402

REPS = 50


def gpu_ms(fn):
    fn()
    torch.cuda.synchronize()
    start, stop = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    torch.cuda._sleep(50_000_000)  # queue ahead so the host's launches do not show in the timing
    start.record()
    for _ in range(REPS):
        fn()
    stop.record()
    torch.cuda.synchronize()
    return start.elapsed_time(stop) / REPS


def copy_tb_s():
    a = torch.empty(1 << 30, dtype=torch.uint8, device="cuda")
    b = torch.empty_like(a)
    return 2 * a.numel() / gpu_ms(lambda: b.copy_(a)) / 1e9


def must(status):
    if status != 0:
        raise RuntimeError(lib().tsl_last_error().decode())


def main():
    L = lib()
    for name in ("tsl_lora_up_acc", "tsl_gemm", "tsl_set_compute_stream"):
        getattr(L, name).restype = ctypes.c_int32
    must(L.tsl_init(0))
    # A side stream shared with PyTorch so its events time the library's kernels (handle 0 would
    # mean the library's own stream).
    stream = torch.cuda.Stream()
    torch.cuda.set_stream(stream)
    must(L.tsl_set_compute_stream(ctypes.c_uint64(stream.cuda_stream)))
    copy = copy_tb_s()
    print(json.dumps({"card": torch.cuda.get_device_name(), "copy_tb_s": round(copy, 3)}), flush=True)
    T, r = 8192, 16
    for N in (14336, 4096, 1024):  # up: y [T, N] += s u [T, r] f[N, r]^T
        y = torch.randn(T, N, device="cuda").bfloat16()
        u = torch.randn(T, r, device="cuda").bfloat16()
        f = torch.randn(N, r, device="cuda").bfloat16()
        ours = gpu_ms(lambda: must(L.tsl_lora_up_acc(ptr(y), i64(T), i64(N), ptr(u), i64(r), 0, ptr(f), r, f32(1e-3))))
        lt = gpu_ms(lambda: must(L.tsl_gemm(0, 1, i64(T), i64(N), i64(r), f32(1e-3), ptr(u), ptr(f), BF16, f32(1), ptr(y), BF16, None)))
        gb = (2 * T * N * 2) / 1e9
        print(json.dumps({"op": "up_acc", "T": T, "N": N, "r": r, "ours_us": round(ours * 1e3, 1), "cublaslt_us": round(lt * 1e3, 1),
                          "ours_pct_copy": round(100 * gb / ours / copy, 1), "cublaslt_pct_copy": round(100 * gb / lt / copy, 1)}), flush=True)
    must(L.tsl_set_compute_stream(ctypes.c_uint64(0)))


if __name__ == "__main__":
    main()
