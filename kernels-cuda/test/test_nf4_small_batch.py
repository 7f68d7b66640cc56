"""The small-batch NF4 GEMM (tsl_nf4_gemm_small: y = x·Wᵀ + bias + LoRA for 1..16 rows of x) against
a float64 reference over the dequantized weights, on fresh random inputs: row counts on both sides
of the 8-token n-tile, shapes that are not multiples of the 64-row x 256-k tile, absmax f32 or
double-quantized, blocksizes 64 to 4096 (blocks that straddle rows), bias in three dtypes, LoRA,
forced split-K, and the refusals of what the kernel does not support."""
import ctypes
import os

import torch

from common import BF16, F16, F32, call, f32, i64, poison, ptr, run, status_of
from test_ops import NF4_CODE, nf4_quantize

BIAS_DTYPES = {F32: torch.float32, BF16: torch.bfloat16, F16: torch.float16}


def gemm_small(qs, out_f, in_f, bs, dq, x, T, bias, bias_dt, a, b, scale, r, y):
    return (ptr(qs["packed"]), i64(out_f), i64(in_f), ctypes.c_int32(bs), ptr(None if dq else qs["absmax"]),
            ptr(qs["q"] if dq else None), ptr(qs["nested_absmax"] if dq else None), ptr(qs["code8"] if dq else None),
            ctypes.c_int32(256), f32(qs["offset"]), ptr(x), i64(T), ptr(bias), ctypes.c_int32(bias_dt), ptr(a), ptr(b),
            f32(scale), ctypes.c_int32(r), ptr(y))


def dequantized(qs, out_f, in_f, bs, dq):
    code = torch.tensor(NF4_CODE, dtype=torch.float64, device="cuda")
    am = (qs["absmax_dq"] if dq else qs["absmax"]).double()
    return (code[qs["idx"].long()] * am.repeat_interleave(bs)[: out_f * in_f]).view(out_f, in_f)


def check_case(rep, out_f, in_f, T, dq, bias_dt, r, bs, splits=None, reduce=None):
    w = torch.randn(out_f, in_f, device="cuda") * 0.02
    qs = nf4_quantize(w, blocksize=bs)
    wd = dequantized(qs, out_f, in_f, bs, dq)
    x = torch.randn(T, in_f, device="cuda").bfloat16()
    ref = x.double() @ wd.T
    bias = None
    if bias_dt is not None:
        bias = torch.randn(out_f, device="cuda").to(BIAS_DTYPES[bias_dt])
        ref = ref + bias.double()
    a = lb = None
    scale = 0.5
    if r:
        a = torch.randn(r, in_f, device="cuda") * 0.05
        lb = torch.randn(out_f, r, device="cuda") * 0.05
        ref = ref + scale * ((x.double() @ a.double().T) @ lb.double().T)
    y = poison((T, out_f), torch.bfloat16)
    if splits:
        os.environ["TSLOTH_NF4_SMALL_SPLITS"] = str(splits)
    if reduce:
        os.environ["TSLOTH_NF4_SMALL_REDUCE"] = reduce
    try:
        call("tsl_nf4_gemm_small", *gemm_small(qs, out_f, in_f, bs, dq, x, T, bias, bias_dt or 0, a, lb, scale, r, y))
    finally:
        os.environ.pop("TSLOTH_NF4_SMALL_SPLITS", None)
        os.environ.pop("TSLOTH_NF4_SMALL_REDUCE", None)
    name = (f"{out_f}x{in_f} T={T} dq={dq} bias={bias_dt} r={r} bs={bs}" + (f" splits={splits}" if splits else "")
            + (f" reduce={reduce}" if reduce else ""))
    rep.check(name, y, ref, 8e-3)


def check_values(rep):
    # (out_f, in_f, T, double-quantized, bias dtype, LoRA rank, blocksize[, forced splits]).
    # Tiles are 64 rows x stages of 256 k (4 warps x 64-k slabs): out_f 1000, 77, 33, 130, 2049 leave
    # the last row tile partly empty; in_f 4160 ends in a stage of one slab, 192 / 320 / 1088 in
    # stages of 3 / 1 / 1 slabs; T = 2, 3, 5 fill part of the 8-token n-tile, 9 and 16 use two.
    # Blocksize 128 with in_f 192, 4096 with 14336 and 256 with 1088: absmax blocks straddle rows.
    # 77 x 192 / 64 = 231 absmax blocks: the last double-quantized word ends past the buffer. Splits:
    # the default choice splits k/v-sized shapes; 3 forced over 8 stages leaves a shorter last split.
    # The splits are summed by the last block of each row tile, or (reduce="kernel", what a first
    # call inside a graph capture does) by a second kernel.
    cases = [(1536, 4096, 8, True, None, 0, 64), (1024, 4096, 8, True, None, 16, 64),
             (1000, 4160, 3, False, F32, 0, 64), (77, 192, 2, True, BF16, 16, 64),
             (33, 192, 16, False, None, 0, 128), (130, 1088, 16, True, F16, 8, 256),
             (300, 14336, 5, True, None, 0, 4096), (2049, 320, 9, False, None, 4, 64),
             (193, 8192, 1, True, F32, 0, 64), (512, 14336, 8, True, None, 0, 64),
             (200, 2048, 8, True, BF16, 4, 64, 3), (520, 4096, 16, False, None, 0, 512, 16),
             (64, 256, 8, False, None, 0, 64, 1), (1024, 4096, 9, True, F32, 8, 64, None, "kernel"),
             (200, 2048, 8, True, None, 0, 64, 3, "kernel")]
    for c in cases:
        check_case(rep, *c)


def check_graph_replay(rep):
    """Decode replays its steps as CUDA graphs: a captured call (split over k: its per-tile counters
    must be back at zero after every run) gives the right y for new x written in place each replay."""
    lib = __import__("common").lib()
    out_f, in_f, T, bs, r, scale = 1024, 4096, 8, 64, 8, 0.5
    qs = nf4_quantize(torch.randn(out_f, in_f, device="cuda") * 0.02, blocksize=bs)
    wd = dequantized(qs, out_f, in_f, bs, True)
    bias = torch.randn(out_f, device="cuda")
    a = torch.randn(r, in_f, device="cuda") * 0.05
    lb = torch.randn(out_f, r, device="cuda") * 0.05
    x = torch.randn(T, in_f, device="cuda").bfloat16()
    y = poison((T, out_f), torch.bfloat16)
    call("tsl_nf4_gemm_small", *gemm_small(qs, out_f, in_f, bs, True, x, T, bias, F32, a, lb, scale, r, y))  # counters exist
    torch.cuda.synchronize()
    graph = ctypes.c_uint64()
    assert lib.tsl_graph_capture_begin() == 0, lib.tsl_last_error().decode()
    status, msg = status_of("tsl_nf4_gemm_small", *gemm_small(qs, out_f, in_f, bs, True, x, T, bias, F32, a, lb, scale, r, y))
    if status != 0:
        lib.tsl_graph_capture_abort()
        raise RuntimeError(msg)
    assert lib.tsl_graph_capture_end(ctypes.byref(graph)) == 0, lib.tsl_last_error().decode()
    try:
        for i in range(3):
            x.copy_(torch.randn(T, in_f, device="cuda").bfloat16())
            y.fill_(float("nan"))
            torch.cuda.synchronize()
            assert lib.tsl_graph_launch(ctypes.c_uint64(graph.value)) == 0, lib.tsl_last_error().decode()
            assert lib.tsl_synchronize() == 0, lib.tsl_last_error().decode()
            ref = x.double() @ wd.T + bias.double() + scale * ((x.double() @ a.double().T) @ lb.double().T)
            rep.check(f"graph replay {i}: {out_f}x{in_f} T={T} bias LoRA", y, ref, 8e-3)
    finally:
        lib.tsl_graph_destroy(ctypes.c_uint64(graph.value))


def check_refusals(rep):
    qs = nf4_quantize(torch.randn(4, 192, device="cuda"), blocksize=64)
    x = torch.randn(17, 192, device="cuda").bfloat16()
    y = poison((17, 4), torch.bfloat16)
    for name, args, words in [
        ("T = 17", gemm_small(qs, 4, 192, 64, False, x, 17, None, 0, None, None, 0, 0, y), "1..16"),
        ("blocksize 32", gemm_small(qs, 4, 192, 32, False, x, 8, None, 0, None, None, 0, 0, y), "power of two of at least 64"),
        ("in_f 96", gemm_small(qs, 8, 96, 64, False, x, 8, None, 0, None, None, 0, 0, y), "multiple of 64"),
        ("LoRA a without b", gemm_small(qs, 4, 192, 64, False, x, 8, None, 0, x, None, 1, 4, y), "both a and b"),
    ]:
        status, msg = status_of("tsl_nf4_gemm_small", *args)
        rep.expect(f"nf4_gemm_small refuses {name}", status != 0 and words in msg, msg)


def body(rep):
    check_values(rep)
    check_graph_replay(rep)
    check_refusals(rep)


if __name__ == "__main__":
    run("nf4 small-batch GEMM (tensor cores, 1..16 rows)", body)
