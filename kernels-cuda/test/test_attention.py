"""Causal GQA attention over packed sequences, forward (o, lse) and backward (dq, dk, dv), against
a float64 PyTorch reference computed one sequence at a time. Dispatches: the default (mma.sync
register tiles, head dims 64 and 128: the forward with 32 query rows per warp; the single-pass
backward with 64-query tiles where the device grants its shared memory, as TSLOTH_ATTENTION_BWD=q64
names it), TSLOTH_ATTENTION_FWD=rows16 (the forward with 16 rows per warp) and rows32w2 (the 32-row
forward in blocks of 2 warps), TSLOTH_ATTENTION_BWD=split (the two-pass backward), fused
(the 16-keys-per-warp single pass, key-block width picked by occupancy), fused64 and fused128 (its 64-
and 128-key blocks forced), TSLOTH_ATTENTION=wmma (the WMMA kernels) and TSLOTH_ATTENTION=simple (the CUDA-core kernels).
   python3 test_attention.py [MODE ...] [--fwd-only]   (only those modes, only the forward: e.g.
   `rows32 rows16 --fwd-only` under a sanitizer, whose slowness the backward cases would multiply)"""
import ctypes
import os
import sys

import torch

from common import BF16_TOL, CATEGORIES, call, f32, i64, poison, ptr, run, status_of

WORKSPACE = CATEGORIES.index("workspace")
BWD_MODES = ("split", "fused", "fused64", "fused128", "q64")  # TSLOTH_ATTENTION_BWD values
SINGLE_PASS = ("q64", "fused", "fused64", "fused128")  # the backwards with an fp32 dQ accumulator


def workspace_bytes():
    """(current, peak) bytes of the library's op scratch."""
    cur, peak = (ctypes.c_uint64 * len(CATEGORIES))(), (ctypes.c_uint64 * len(CATEGORIES))()
    call("tsl_memory_stats", cur, peak, None, None)
    return cur[WORKSPACE], peak[WORKSPACE]


def reference(q, k, v, lens, Hq, Hkv, D, scale):
    T = q.shape[0]
    qd = q.double().view(T, Hq, D).requires_grad_(True)
    kd = k.double().view(T, Hkv, D).requires_grad_(True)
    vd = v.double().view(T, Hkv, D).requires_grad_(True)
    outs, lses = [], []
    s0 = 0
    g = Hq // Hkv
    for n in lens:
        qs = qd[s0:s0 + n].transpose(0, 1)                       # [Hq, n, D]
        ks = kd[s0:s0 + n].transpose(0, 1).repeat_interleave(g, 0)
        vs = vd[s0:s0 + n].transpose(0, 1).repeat_interleave(g, 0)
        sc = (qs @ ks.transpose(1, 2)) * scale
        mask = torch.ones(n, n, dtype=torch.bool, device=q.device).tril()
        sc = sc.masked_fill(~mask, float("-inf"))
        lses.append(torch.logsumexp(sc, -1))                     # [Hq, n]
        outs.append((torch.softmax(sc, -1) @ vs).transpose(0, 1))
        s0 += n
    o = torch.cat(outs, 0).reshape(T, Hq * D)
    lse = torch.cat(lses, 1)
    return o, lse.detach(), (qd, kd, vd)


def case(rep, lens, Hq, Hkv, D):
    T = sum(lens)
    scale = D ** -0.5
    q = torch.randn(T, Hq * D, device="cuda").bfloat16()
    k = torch.randn(T, Hkv * D, device="cuda").bfloat16()
    v = torch.randn(T, Hkv * D, device="cuda").bfloat16()
    cu = torch.tensor([0] + list(torch.tensor(lens).cumsum(0)), device="cuda", dtype=torch.int32)
    o = poison((T, Hq * D), torch.bfloat16)
    lse = poison((Hq, T), torch.float32)
    mode = (os.environ.get("TSLOTH_ATTENTION_BWD") or os.environ.get("TSLOTH_ATTENTION_FWD")
            or os.environ.get("TSLOTH_ATTENTION", "default"))
    name = f"{mode} lens={lens} Hq={Hq} Hkv={Hkv} D={D}"
    call("tsl_attention_fwd", ptr(q), ptr(k), ptr(v), ptr(cu), len(lens), max(lens), i64(T), Hq, Hkv, D, f32(scale),
         ptr(o), ptr(lse))
    oref, lseref, (qd, kd, vd) = reference(q, k, v, lens, Hq, Hkv, D, scale)
    rep.check(f"attn fwd o   {name}", o, oref, BF16_TOL)
    rep.check(f"attn fwd lse {name}", lse, lseref, 1e-4)
    if "--fwd-only" in sys.argv:
        return
    do = torch.randn(T, Hq * D, device="cuda").bfloat16()
    oref.backward(do.double())
    dq, dk, dv = (poison((T, Hq * D), torch.bfloat16), poison((T, Hkv * D), torch.bfloat16),
                  poison((T, Hkv * D), torch.bfloat16))
    call("tsl_reset_peak")
    ws_before, _ = workspace_bytes()
    call("tsl_attention_bwd", ptr(do), ptr(q), ptr(k), ptr(v), ptr(o), ptr(lse), ptr(cu), len(lens), max(lens), i64(T),
         Hq, Hkv, D, f32(scale), ptr(dq), ptr(dk), ptr(dv))
    ws_after, ws_peak = workspace_bytes()
    # The single-pass backward is the only one with an fp32 dQ accumulator (T·Hq·D floats) in scratch:
    # its presence shows which path ran, and every path must give its scratch back.
    acc_bytes = T * Hq * D * 4
    fused = (os.environ.get("TSLOTH_ATTENTION_BWD", "q64") in SINGLE_PASS and "TSLOTH_ATTENTION" not in os.environ
             and D in (64, 128))
    rep.expect(f"attn bwd path {name}", (ws_peak - ws_before >= acc_bytes) == fused,
               f"workspace peak {ws_peak - ws_before} B over the start, dQ accumulator {acc_bytes} B, fused: {fused}")
    rep.expect(f"attn bwd scratch freed {name}", ws_after == ws_before, f"{ws_before} -> {ws_after} B")
    rep.check(f"attn bwd dq  {name}", dq, qd.grad.reshape(T, -1), 2e-2)
    rep.check(f"attn bwd dk  {name}", dk, kd.grad.reshape(T, -1), 2e-2)
    rep.check(f"attn bwd dv  {name}", dv, vd.grad.reshape(T, -1), 2e-2)


FWD_MODES = ("rows16", "rows32w2")  # TSLOTH_ATTENTION_FWD values; rows32 = the default
MODES = ("default", "rows32") + FWD_MODES + BWD_MODES + ("wmma", "simple")


def refuses_unknown_forward(rep):
    os.environ["TSLOTH_ATTENTION_FWD"] = "rows8"
    q = torch.randn(4, 2 * 64, device="cuda").bfloat16()
    kv = torch.randn(4, 64, device="cuda").bfloat16()
    cu = torch.tensor([0, 4], device="cuda", dtype=torch.int32)
    o, lse = poison((4, 2 * 64), torch.bfloat16), poison((2, 4), torch.float32)
    st, msg = status_of("tsl_attention_fwd", ptr(q), ptr(kv), ptr(kv), ptr(cu), 1, 4, i64(4), 2, 1, 64, f32(0.125), ptr(o),
                        ptr(lse))
    os.environ.pop("TSLOTH_ATTENTION_FWD")
    rep.expect("attn fwd refuses TSLOTH_ATTENTION_FWD=rows8", st != 0 and "TSLOTH_ATTENTION_FWD" in msg, msg)


def body(rep):
    modes = [a for a in sys.argv[1:] if a in MODES] or [m for m in MODES if m != "rows32"]
    for mode in modes:
        for var in ("TSLOTH_ATTENTION", "TSLOTH_ATTENTION_BWD", "TSLOTH_ATTENTION_FWD"):
            os.environ.pop(var, None)
        if mode in BWD_MODES:
            os.environ["TSLOTH_ATTENTION_BWD"] = mode
        elif mode in FWD_MODES or mode == "rows32":
            os.environ["TSLOTH_ATTENTION_FWD"] = mode
        elif mode != "default":
            os.environ["TSLOTH_ATTENTION"] = mode
        case(rep, [1, 70], 2, 1, 64)  # a one-token sequence beside a longer one
        case(rep, [100, 37, 200], 8, 2, 64)
        case(rep, [300, 129], 4, 4, 128)
        case(rep, [513], 8, 1, 128)
        if mode not in ("wmma", "simple"):
            # Several K/V tiles per block, the diagonal tile in the middle of the pipeline, lengths
            # that end mid-tile, a one-token and a two-token sequence, GQA groups of 4.
            case(rep, [1, 700, 2, 333], 8, 2, 128)
            case(rep, [1000, 65], 4, 1, 64)
            case(rep, [200, 136], 4, 2, 128)  # query tiles that end inside a warp's 32 queries
            case(rep, [2, 1, 129, 256], 8, 2, 64)  # key blocks that end exactly at, and one past, a block edge
            case(rep, [70, 31], 4, 2, 16)  # head dims the fused backward leaves to the split kernels
            case(rep, [90], 2, 1, 32)
            case(rep, [65, 40], 2, 2, 256)
    for var in ("TSLOTH_ATTENTION", "TSLOTH_ATTENTION_BWD", "TSLOTH_ATTENTION_FWD"):
        os.environ.pop(var, None)
    refuses_unknown_forward(rep)


if __name__ == "__main__":
    run("attention fwd/bwd (causal, GQA, packed)", body)
