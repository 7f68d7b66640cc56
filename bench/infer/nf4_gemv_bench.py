#!/usr/bin/env python3
"""Weight-stream bandwidth of tsl_nf4_gemv (batch-1 NF4 decode) on the Llama-3.1-8B projection
shapes, beside the card's copy bandwidth measured in the same run (1 GiB device copy_, bytes read +
written) and PyTorch's bf16 matrix-vector product on the same shape (the 16-bit alternative).
Bytes counted: packed codes + 8-bit absmax + nested absmax (what the kernel must read). Each timed
call reads another copy of the weights, cycling through more than L2 holds, so the numbers are
HBM's, as in a real decode step where every layer's weights are new.
The numbers are GPU time, not host time: before the start event a torch.cuda._sleep spin (~50 ms)
is enqueued, so the host has queued every timed call (ctypes calls and torch.mv alike) before the
GPU reaches the first of them; back-to-back Python calls would otherwise be timed at the host's pace.
(kernels-cuda/dev/nf4_gemv_bench.cu times the kernel variants the same way, through a CUDA graph.)
Then a layer's matrices that share x (q/k/v, gate/up) as one tsl_nf4_gemv_group launch beside the
same matrices as single calls.
  python3 bench/infer/nf4_gemv_bench.py
"""
import ctypes
import json
import os
import sys

import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "kernels-cuda", "test"))
from common import F32, f32, i64, lib, ptr  # noqa: E402


def sleep_cycles(ms):
    """GPU clock cycles of a spin lasting about `ms` milliseconds (from the card's clock rate)."""
    khz = getattr(torch.cuda.get_device_properties(0), "clock_rate", 0) or 2_000_000
    return int(khz * ms)


def time_ms(fn, reps=50):
    for _ in range(5):
        fn()
    torch.cuda.synchronize()
    a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    # Keep the GPU busy while the host enqueues all reps, so the events time the GPU's work.
    torch.cuda._sleep(sleep_cycles(50))
    a.record()
    for _ in range(reps):
        fn()
    b.record()
    torch.cuda.synchronize()
    return a.elapsed_time(b) / reps


def main():
    L = lib()
    stream = torch.cuda.Stream()
    torch.cuda.set_stream(stream)
    L.tsl_set_compute_stream(ctypes.c_uint64(stream.cuda_stream))
    src = torch.empty(2**30, dtype=torch.uint8, device="cuda")
    dst = torch.empty_like(src)
    copy_ms = time_ms(lambda: dst.copy_(src), 20)
    copy_gbs = 2 * 2**30 / copy_ms / 1e6
    del src, dst
    L.tsl_nf4_gemv.restype = ctypes.c_int32
    L.tsl_nf4_gemv_group.restype = ctypes.c_int32
    bench_shapes(L, copy_gbs)
    L.tsl_set_compute_stream(ctypes.c_uint64(0))


def make_weights(out_f, in_f):
    """Enough copies of one shape's packed codes (with its 8-bit and nested absmax) to exceed L2."""
    n = out_f * in_f
    copies = max(2, -(-(512 << 20) // (n // 2)))
    packs = [torch.randint(0, 256, (n // 2,), dtype=torch.uint8, device="cuda") for _ in range(copies)]
    q = torch.randint(0, 256, (n // 64,), dtype=torch.uint8, device="cuda")
    nested = torch.rand((n // 64 + 255) // 256, device="cuda") * 0.01
    return dict(out_f=out_f, packs=packs, q=q, nested=nested, bytes=n // 2 + q.numel() + 4 * nested.numel())


def bench_shapes(L, copy_gbs):
    code = torch.linspace(-1, 1, 256, device="cuda")
    gpu = torch.cuda.get_device_name()
    shapes = {"q/o 4096x4096": (4096, 4096), "k/v 1024x4096": (1024, 4096), "gate/up 14336x4096": (14336, 4096),
              "down 4096x14336": (4096, 14336)}
    for name, (out_f, in_f) in shapes.items():
        w = make_weights(out_f, in_f)
        x = torch.randn(in_f, device="cuda").bfloat16()
        y = torch.empty(out_f, device="cuda", dtype=torch.bfloat16)
        args = [None, i64(out_f), i64(in_f), ctypes.c_int32(64), ptr(None), ptr(w["q"]), ptr(w["nested"]), ptr(code),
                ctypes.c_int32(256), f32(0.05), ptr(x), ptr(None), ctypes.c_int32(F32), ptr(None), ptr(None), f32(0), ctypes.c_int32(0), ptr(y)]
        turn = [0]

        def run():
            turn[0] = (turn[0] + 1) % len(w["packs"])
            args[0] = ptr(w["packs"][turn[0]])
            s = L.tsl_nf4_gemv(*args)
            assert s == 0, L.tsl_last_error()
        ms = time_ms(run)
        del w
        n = out_f * in_f
        c16 = max(2, -(-(512 << 20) // (2 * n)))
        w16 = [torch.randn(out_f, in_f, device="cuda").bfloat16() for _ in range(c16)]
        t16 = [0]

        def mv():
            t16[0] = (t16[0] + 1) % c16
            torch.mv(w16[t16[0]], x)
        ms16 = time_ms(mv)
        del w16
        nbytes = n // 2 + n // 64 + 4 * ((n // 64 + 255) // 256)
        print(json.dumps(dict(op="nf4_gemv", shape=name, ms=round(ms, 4), gb_per_s=round(nbytes / ms / 1e6),
                              copy_gb_per_s=round(copy_gbs), pct_of_copy=round(100 * nbytes / ms / 1e6 / copy_gbs, 1),
                              torch_bf16_mv_ms=round(ms16, 4), speedup_vs_bf16_mv=round(ms16 / ms, 2), gpu=gpu)), flush=True)
    bench_groups(L, copy_gbs, code, gpu)


def bench_groups(L, copy_gbs, code, gpu):
    """The matrices of a layer that share x, as one tsl_nf4_gemv_group launch and as single calls."""
    for name, outs in {"q/k/v 4096+1024+1024 x4096": (4096, 1024, 1024), "gate/up 2x14336 x4096": (14336, 14336)}.items():
        in_f, k = 4096, len(outs)
        ws = [make_weights(o, in_f) for o in outs]
        copies = min(len(w["packs"]) for w in ws)
        x = torch.randn(in_f, device="cuda").bfloat16()
        ys = [torch.empty(o, device="cuda", dtype=torch.bfloat16) for o in outs]
        arr = lambda ctype, xs: (ctype * k)(*xs)  # noqa: E731
        fixed = dict(out_f=arr(ctypes.c_int64, outs), q=arr(ctypes.c_uint64, [w["q"].data_ptr() for w in ws]),
                     nested=arr(ctypes.c_uint64, [w["nested"].data_ptr() for w in ws]),
                     code=arr(ctypes.c_uint64, [code.data_ptr()] * k), nbs=arr(ctypes.c_int32, [256] * k),
                     off=arr(ctypes.c_float, [0.05] * k), y=arr(ctypes.c_uint64, [t.data_ptr() for t in ys]))
        turn = [0]

        def grouped():
            turn[0] = (turn[0] + 1) % copies
            packed = arr(ctypes.c_uint64, [w["packs"][turn[0]].data_ptr() for w in ws])
            s = L.tsl_nf4_gemv_group(ctypes.c_int32(k), packed, fixed["out_f"], i64(in_f), ctypes.c_int32(64), None, fixed["q"],
                                     fixed["nested"], fixed["code"], fixed["nbs"], fixed["off"], ptr(x), None, ctypes.c_int32(F32),
                                     None, None, None, None, fixed["y"])
            assert s == 0, L.tsl_last_error()

        def single():
            turn[0] = (turn[0] + 1) % copies
            for w, y in zip(ws, ys):
                s = L.tsl_nf4_gemv(ptr(w["packs"][turn[0]]), i64(w["out_f"]), i64(in_f), ctypes.c_int32(64), ptr(None), ptr(w["q"]),
                                   ptr(w["nested"]), ptr(code), ctypes.c_int32(256), f32(0.05), ptr(x), ptr(None), ctypes.c_int32(F32),
                                   ptr(None), ptr(None), f32(0), ctypes.c_int32(0), ptr(y))
                assert s == 0, L.tsl_last_error()
        nbytes = sum(w["bytes"] for w in ws)
        for how, fn in (("group", grouped), ("single calls", single)):
            ms = time_ms(fn)
            print(json.dumps(dict(op="nf4_gemv_group", shapes=name, launch=how, ms=round(ms, 4), gb_per_s=round(nbytes / ms / 1e6),
                                  copy_gb_per_s=round(copy_gbs), pct_of_copy=round(100 * nbytes / ms / 1e6 / copy_gbs, 1),
                                  gpu=gpu)), flush=True)
        del ws


if __name__ == "__main__":
    main()
