"""GPU time of the small-batch NF4 GEMM (tsl_nf4_gemm_small) on the Llama-3.1-8B linear shapes for
T = 1..16 rows, beside what it replaces (tsl_nf4_dequantize into one bf16 workspace + tsl_linear_fwd,
the library's dequantize + cuBLASLt path) and PyTorch's bf16 matmul over bf16 weights, and for T = 1
the batch-1 GEMV (tsl_nf4_gemv). Each number is a CUDA graph of many calls replayed and timed with
CUDA events, divided by the calls: the calls cycle over enough weight copies (> 2x L2) that every
weight read comes from HBM, and the graph removes host launch cost. % of copy: the 4-bit weight
stream (codes + absmax) over the time, against a 1 GiB device copy measured here. At T = 8 the split
count of the k stages is swept too (TSLOTH_NF4_SMALL_SPLITS). Writes $OUT/bench_nf4_small_batch.json
when OUT is set.
   python3 kernels-cuda/dev/bench_nf4_small_batch.py [--quick]"""
import ctypes
import json
import math
import os
import sys

import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "test"))
from common import BF16, f32, i64, lib, ptr, u64  # noqa: E402
from test_ops import nf4_quantize  # noqa: E402

SHAPES = [("q/o 4096x4096", 4096, 4096), ("k/v 1024x4096", 1024, 4096), ("gate/up 14336x4096", 14336, 4096),
          ("down 4096x14336", 4096, 14336)]


def L(name, *args):
    fn = getattr(lib(), name)
    fn.restype = ctypes.c_int32
    st = fn(*args)
    if st:
        raise RuntimeError(f"{name}: {lib().tsl_last_error().decode()}")


def time_events(replay, calls, reps=7):
    replay()
    torch.cuda.synchronize()
    times = []
    for _ in range(reps):
        s, e = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        s.record()
        replay()
        e.record()
        e.synchronize()
        times.append(s.elapsed_time(e) / 1e3 / calls)
    times.sort()
    return times[len(times) // 2]


def lib_graph_time(calls_once, calls, rounds):
    """Captures `rounds` x calls_once() into one library graph and returns seconds per call."""
    calls_once()  # warm: kernel setup and scratch blocks before the capture
    torch.cuda.synchronize()
    L("tsl_graph_capture_begin")
    try:
        for _ in range(rounds):
            calls_once()
    except Exception:
        L("tsl_graph_capture_abort")
        raise
    g = ctypes.c_uint64()
    L("tsl_graph_capture_end", ctypes.byref(g))
    try:
        return time_events(lambda: L("tsl_graph_launch", u64(g.value)), calls * rounds)
    finally:
        L("tsl_graph_destroy", u64(g.value))


def torch_graph_time(calls_once, calls, rounds):
    calls_once()
    torch.cuda.synchronize()
    g = torch.cuda.CUDAGraph()
    with torch.cuda.graph(g):
        for _ in range(rounds):
            calls_once()
    return time_events(g.replay, calls * rounds)


def main():
    quick = "--quick" in sys.argv
    lib()
    L("tsl_init", 0)
    stream = torch.cuda.Stream()  # shared with the library so torch's events time its kernels
    torch.cuda.set_stream(stream)
    L("tsl_set_compute_stream", u64(stream.cuda_stream))
    props = torch.cuda.get_device_properties(0)
    l2 = props.L2_cache_size
    big = torch.empty(1 << 30, dtype=torch.uint8, device="cuda").random_(0, 255)
    dst = torch.empty_like(big)
    copy_bw = 2 * big.numel() / time_events(lambda: dst.copy_(big), 1)
    del big, dst
    print(f"card: {props.name}, {props.multi_processor_count} SMs, L2 {l2 >> 20} MiB, copy {copy_bw / 1e12:.2f} TB/s", flush=True)
    results = []
    ts = [1, 2, 4, 8, 16] if quick else list(range(1, 17))
    for label, out_f, in_f in SHAPES:
        w = torch.randn(out_f, in_f, device="cuda") * 0.02
        qs = nf4_quantize(w)
        stream_bytes = qs["packed"].numel() + qs["q"].numel() + qs["nested_absmax"].numel() * 4
        copies = max(2, math.ceil(2.5 * l2 / stream_bytes))
        packs = [qs["packed"].clone() for _ in range(copies)]
        qabs = [qs["q"].clone() for _ in range(copies)]
        wbf = w.bfloat16()
        bf_copies = max(2, math.ceil(2.5 * l2 / (wbf.numel() * 2)))
        wbfs = [wbf.clone() for _ in range(bf_copies)]
        ws = torch.empty(out_f * in_f, dtype=torch.bfloat16, device="cuda")
        rounds = max(1, 64 // copies)

        def small_args(c, x, T, y):
            return (ptr(packs[c]), i64(out_f), i64(in_f), ctypes.c_int32(64), ptr(None), ptr(qabs[c]),
                    ptr(qs["nested_absmax"]), ptr(qs["code8"]), ctypes.c_int32(256), f32(qs["offset"]), ptr(x), i64(T),
                    ptr(None), ctypes.c_int32(0), ptr(None), ptr(None), f32(0), ctypes.c_int32(0), ptr(y))

        for T in ts:
            x = torch.randn(T, in_f, device="cuda").bfloat16()
            y = torch.empty(T, out_f, device="cuda", dtype=torch.bfloat16)

            def small():
                for c in range(copies):
                    L("tsl_nf4_gemm_small", *small_args(c, x, T, y))

            def dequant_gemm():
                for c in range(copies):
                    L("tsl_nf4_dequantize", ptr(packs[c]), u64(out_f * in_f), ctypes.c_int32(64), ptr(None), ptr(qabs[c]),
                      ptr(qs["nested_absmax"]), ptr(qs["code8"]), ctypes.c_int32(256), f32(qs["offset"]), ptr(ws),
                      ctypes.c_int32(BF16))
                    L("tsl_linear_fwd", ptr(x), ptr(ws), ptr(None), BF16, ptr(None), ptr(None), f32(0), i64(T), i64(in_f),
                      i64(out_f), ctypes.c_int32(0), ptr(y))

            def torch_mm():
                for c in range(bf_copies):
                    torch.matmul(x, wbfs[c].t(), out=y)

            t_small = lib_graph_time(small, copies, rounds)
            t_deq = lib_graph_time(dequant_gemm, copies, max(1, rounds // 2))
            t_torch = torch_graph_time(torch_mm, bf_copies, max(1, 32 // bf_copies))
            rec = dict(shape=label, out=out_f, inf=in_f, T=T, small_us=t_small * 1e6, dequant_gemm_us=t_deq * 1e6,
                       torch_bf16_us=t_torch * 1e6, pct_copy=100 * stream_bytes / t_small / copy_bw)
            if T == 1:
                def gemv():
                    for c in range(copies):
                        L("tsl_nf4_gemv", ptr(packs[c]), i64(out_f), i64(in_f), ctypes.c_int32(64), ptr(None), ptr(qabs[c]),
                          ptr(qs["nested_absmax"]), ptr(qs["code8"]), ctypes.c_int32(256), f32(qs["offset"]), ptr(x),
                          ptr(None), ctypes.c_int32(0), ptr(None), ptr(None), f32(0), ctypes.c_int32(0), ptr(y))
                try:
                    rec["gemv_us"] = lib_graph_time(gemv, copies, rounds) * 1e6
                except RuntimeError as e:
                    rec["gemv_error"] = str(e)
            if T == 8:
                sweep = {}
                for s in (1, 2, 4, 8, 16):
                    os.environ["TSLOTH_NF4_SMALL_SPLITS"] = str(s)
                    try:
                        sweep[s] = round(lib_graph_time(small, copies, rounds) * 1e6, 2)
                    finally:
                        os.environ.pop("TSLOTH_NF4_SMALL_SPLITS", None)
                rec["splits_us"] = sweep
            results.append(rec)
            print(f"  {label:<20} T={T:2d}  small {rec['small_us']:7.2f} us ({rec['pct_copy']:5.1f}% of copy)  "
                  f"dequant+gemm {rec['dequant_gemm_us']:7.2f} us  torch bf16 {rec['torch_bf16_us']:7.2f} us"
                  + (f"  gemv {rec['gemv_us']:6.2f} us" if "gemv_us" in rec else "")
                  + (f"  splits {rec['splits_us']}" if "splits_us" in rec else ""), flush=True)
        del packs, qabs, wbfs, ws
    # One 8B decoder layer at T = 8: q, k, v, o, gate, up, down.
    layer = {}
    for key in ("small_us", "dequant_gemm_us", "torch_bf16_us"):
        per = {r["shape"]: r[key] for r in results if r["T"] == 8}
        if len(per) == 4:
            layer[key] = 2 * per["q/o 4096x4096"] + 2 * per["k/v 1024x4096"] + 2 * per["gate/up 14336x4096"] + per["down 4096x14336"]
    if layer:
        print(f"one 8B layer at T=8 (sum of 7 projections): " + ", ".join(f"{k} {v:.1f}" for k, v in layer.items()), flush=True)
    out = os.environ.get("OUT")
    if out:
        with open(os.path.join(out, "bench_nf4_small_batch.json"), "w") as f:
            json.dump(dict(card=props.name, copy_tbs=copy_bw / 1e12, results=results, layer_t8=layer), f, indent=1)


if __name__ == "__main__":
    main()
