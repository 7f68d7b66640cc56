"""Causal GQA attention over packed sequences, forward (o, lse) and backward (dq, dk, dv), against
a float64 PyTorch reference computed one sequence at a time. Dispatches: the default (mma.sync
register tiles, head dims 64 and 128; the single-pass backward with its key-block width picked by
occupancy), TSLOTH_ATTENTION_BWD=split (the two-pass backward), fused64 and fused128 (64- and 128-key
blocks forced), TSLOTH_ATTENTION=wmma (the WMMA kernels) and TSLOTH_ATTENTION=simple (the CUDA-core
kernels)."""
import ctypes
import os

import torch

from common import BF16_TOL, CATEGORIES, call, f32, i64, poison, ptr, run

WORKSPACE = CATEGORIES.index("workspace")


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
    mode = os.environ.get("TSLOTH_ATTENTION_BWD") or os.environ.get("TSLOTH_ATTENTION", "default")
    name = f"{mode} lens={lens} Hq={Hq} Hkv={Hkv} D={D}"
    call("tsl_attention_fwd", ptr(q), ptr(k), ptr(v), ptr(cu), len(lens), max(lens), i64(T), Hq, Hkv, D, f32(scale),
         ptr(o), ptr(lse))
    oref, lseref, (qd, kd, vd) = reference(q, k, v, lens, Hq, Hkv, D, scale)
    rep.check(f"attn fwd o   {name}", o, oref, BF16_TOL)
    rep.check(f"attn fwd lse {name}", lse, lseref, 1e-4)
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
    fused = (os.environ.get("TSLOTH_ATTENTION_BWD", "fused").startswith("fused") and "TSLOTH_ATTENTION" not in os.environ
             and D in (64, 128))
    rep.expect(f"attn bwd path {name}", (ws_peak - ws_before >= acc_bytes) == fused,
               f"workspace peak {ws_peak - ws_before} B over the start, dQ accumulator {acc_bytes} B, fused: {fused}")
    rep.expect(f"attn bwd scratch freed {name}", ws_after == ws_before, f"{ws_before} -> {ws_after} B")
    rep.check(f"attn bwd dq  {name}", dq, qd.grad.reshape(T, -1), 2e-2)
    rep.check(f"attn bwd dk  {name}", dk, kd.grad.reshape(T, -1), 2e-2)
    rep.check(f"attn bwd dv  {name}", dv, vd.grad.reshape(T, -1), 2e-2)


def body(rep):
    for mode in ("default", "split", "fused64", "fused128", "wmma", "simple"):
        os.environ.pop("TSLOTH_ATTENTION", None)
        os.environ.pop("TSLOTH_ATTENTION_BWD", None)
        if mode in ("split", "fused64", "fused128"):
            os.environ["TSLOTH_ATTENTION_BWD"] = mode
        elif mode != "default":
            os.environ["TSLOTH_ATTENTION"] = mode
        case(rep, [1, 70], 2, 1, 64)  # a one-token sequence beside a longer one
        case(rep, [100, 37, 200], 8, 2, 64)
        case(rep, [300, 129], 4, 4, 128)
        case(rep, [513], 8, 1, 128)
        if mode in ("default", "split", "fused64", "fused128"):
            # Several K/V tiles per block, the diagonal tile in the middle of the pipeline, lengths
            # that end mid-tile, a one-token and a two-token sequence, GQA groups of 4.
            case(rep, [1, 700, 2, 333], 8, 2, 128)
            case(rep, [1000, 65], 4, 1, 64)
            case(rep, [2, 1, 129, 256], 8, 2, 64)  # key blocks that end exactly at, and one past, a block edge
            case(rep, [70, 31], 4, 2, 16)  # head dims the fused backward leaves to the split kernels
            case(rep, [90], 2, 1, 32)
            case(rep, [65, 40], 2, 2, 256)
    os.environ.pop("TSLOTH_ATTENTION", None)
    os.environ.pop("TSLOTH_ATTENTION_BWD", None)


if __name__ == "__main__":
    run("attention fwd/bwd (causal, GQA, packed)", body)
