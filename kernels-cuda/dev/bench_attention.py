"""Attention forward/backward timings alone (Llama-3.1-8B heads: 32 q, 8 kv, D 128; 4 x 2048 packed and
1 x 8192), beside PyTorch's SDPA and the FLOP floor at the matmul rate measured here. The backward is
timed five ways in the same run (TSLOTH_ATTENTION_BWD): split (dQ pass + key-block pass, deterministic),
the 16-keys-per-warp single pass with atomic dQ (fused: block width picked by occupancy; fused64 and
fused128: 64- and 128-key blocks) and the 64-query-tile single pass (q64, the default where the shared
memory allows). A last shape, Llama-3.2-1B heads (32 q, 8 kv, D 64) at 1 x 8192,
shows the head dim where the two widths differ in occupancy. The forward is timed per
TSLOTH_ATTENTION_FWD in the same run: rows32 (32 query rows per warp, the default), rows32w2 (the
same in blocks of 2 warps) and rows16 (16 rows per warp). Run once per library build to compare
versions on the same card in one device call:
   TSLOTH_CUDA_LIB=path/to/libtsloth_cuda.so python3 kernels-cuda/dev/bench_attention.py [label]
   python3 kernels-cuda/dev/bench_attention.py --once   (one fwd + bwd at 4 x 2048, for ncu)
Outputs are checked against SDPA (relative error) so a fast wrong kernel cannot pass unnoticed."""
import os
import sys

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_ops import L, bench  # noqa: E402
from common import f32, i64, lib, ptr, u64  # noqa: E402


BWD_MODES = ("split", "fused", "fused64", "fused128", "q64")  # TSLOTH_ATTENTION_BWD values; q64 = the default
FWD_MODES = ("rows32", "rows32w2", "rows16")  # TSLOTH_ATTENTION_FWD values; rows32 = the default


def rel(a, b):
    return ((a.float() - b.float()).norm() / b.float().norm()).item()


def once():
    """One forward and one backward at 4 x 2048 and nothing else, for a profiler to look at."""
    D, Hq, Hkv, B, n = 128, 32, 8, 4, 2048
    Tn = B * n
    q, do = (torch.randn(Tn, Hq * D, device="cuda").bfloat16() for _ in range(2))
    k, v = (torch.randn(Tn, Hkv * D, device="cuda").bfloat16() for _ in range(2))
    cu = torch.arange(0, Tn + 1, n, device="cuda", dtype=torch.int32)
    o, dq = torch.empty_like(q), torch.empty_like(q)
    dk, dv = torch.empty_like(k), torch.empty_like(v)
    lse = torch.empty(Hq, Tn, device="cuda")
    L("tsl_attention_fwd", ptr(q), ptr(k), ptr(v), ptr(cu), B, n, i64(Tn), Hq, Hkv, D, f32(D ** -0.5), ptr(o), ptr(lse))
    L("tsl_attention_bwd", ptr(do), ptr(q), ptr(k), ptr(v), ptr(o), ptr(lse), ptr(cu), B, n, i64(Tn), Hq, Hkv, D,
      f32(D ** -0.5), ptr(dq), ptr(dk), ptr(dv))
    L("tsl_synchronize")


def main():
    if "--once" in sys.argv:
        lib()
        L("tsl_init", 0)
        return once()
    label = sys.argv[1] if len(sys.argv) > 1 else os.path.basename(os.environ.get("TSLOTH_CUDA_LIB", "build"))
    lib()
    L("tsl_init", 0)
    stream = torch.cuda.Stream()
    torch.cuda.set_stream(stream)
    L("tsl_set_compute_stream", u64(stream.cuda_stream))
    a = torch.randn(8192, 8192, device="cuda").bfloat16()
    b = torch.randn(8192, 8192, device="cuda").bfloat16()
    mm_rate = 2 * 8192 ** 3 / bench(lambda: a @ b, reps=10)
    del a, b
    Hq, Hkv = 32, 8
    lines = []
    for D, lens in ((128, [2048] * 4), (128, [8192]), (64, [8192])):
        Tn = sum(lens)
        B, n = len(lens), lens[0]
        q = torch.randn(Tn, Hq * D, device="cuda").bfloat16()
        k = torch.randn(Tn, Hkv * D, device="cuda").bfloat16()
        v = torch.randn(Tn, Hkv * D, device="cuda").bfloat16()
        do = torch.randn(Tn, Hq * D, device="cuda").bfloat16()
        cu = torch.tensor([0] + [sum(lens[: i + 1]) for i in range(B)], device="cuda", dtype=torch.int32)
        o = torch.full_like(q, float("nan"))
        lse = torch.empty(Hq, Tn, device="cuda")
        outs = {}
        fargs = (ptr(q), ptr(k), ptr(v), ptr(cu), B, n, i64(Tn), Hq, Hkv, D, f32(D ** -0.5), ptr(o), ptr(lse))
        flops = sum(2 * m * m * D * Hq for m in lens)
        t_fwd, o_fwd = {}, {}
        for fwd_mode in FWD_MODES:
            os.environ["TSLOTH_ATTENTION_FWD"] = fwd_mode
            o.fill_(float("nan"))
            t_fwd[fwd_mode] = bench(lambda: L("tsl_attention_fwd", *fargs), reps=10)
            o_fwd[fwd_mode] = o.clone()
        os.environ.pop("TSLOTH_ATTENTION_FWD", None)
        L("tsl_attention_fwd", *fargs)  # the default's o and lse feed the backward
        dq, dk, dv = (torch.full_like(q, float("nan")), torch.full_like(k, float("nan")), torch.full_like(v, float("nan")))
        bargs = (ptr(do), ptr(q), ptr(k), ptr(v), ptr(o), ptr(lse), ptr(cu), B, n, i64(Tn), Hq, Hkv, D, f32(D ** -0.5),
                 ptr(dq), ptr(dk), ptr(dv))
        t_bwd = {}
        for bwd_mode in BWD_MODES:
            os.environ["TSLOTH_ATTENTION_BWD"] = bwd_mode
            for x in (dq, dk, dv):
                x.fill_(float("nan"))
            t_bwd[bwd_mode] = bench(lambda: L("tsl_attention_bwd", *bargs), reps=10)
            outs[bwd_mode] = (dq.clone(), dk.clone(), dv.clone())
        os.environ.pop("TSLOTH_ATTENTION_BWD", None)
        qt, kt, vt = (x.view(B, n, -1, D).transpose(1, 2).detach().requires_grad_(True) for x in (q, k, v))
        ref = F.scaled_dot_product_attention(qt, kt, vt, is_causal=True, enable_gqa=True)
        got = torch.autograd.grad(ref, (qt, kt, vt), do.view(B, n, Hq, D).transpose(1, 2), retain_graph=True)
        tt_f = bench(lambda: F.scaled_dot_product_attention(qt, kt, vt, is_causal=True, enable_gqa=True), reps=10)
        go = do.view(B, n, Hq, D).transpose(1, 2)
        tt_b = bench(lambda: torch.autograd.grad(ref, (qt, kt, vt), go, retain_graph=True), reps=10)
        shape = f"{B}x{n}" + ("" if D == 128 else f"/D{D}")
        for fwd_mode in FWD_MODES:
            t_f = t_fwd[fwd_mode]
            err_o = rel(o_fwd[fwd_mode], ref.transpose(1, 2).reshape(Tn, -1))
            lines.append(f"{label:<10} fwd {fwd_mode:<10} {shape:<10} {t_f * 1e3:8.3f} ms  floor {flops / mm_rate * 1e3:6.3f}  "
                         f"{100 * flops / mm_rate / t_f:5.1f}%  sdpa {tt_f * 1e3:7.3f}  ratio {t_f / tt_f:5.2f}  err o {err_o:.1e}")
            if not err_o < 2e-2:
                lines.append(f"{label:<10} fwd {fwd_mode} {shape}: WRONG RESULT vs SDPA (relative error {err_o})")
        for bwd_mode in BWD_MODES:
            t_b = t_bwd[bwd_mode]
            err = [rel(x, g.transpose(1, 2).reshape(Tn, -1)) for x, g in zip(outs[bwd_mode], got)]
            lines.append(f"{label:<10} bwd {bwd_mode:<8} {shape:<10} {t_b * 1e3:8.3f} ms  floor {2.5 * flops / mm_rate * 1e3:6.3f}  "
                         f"{100 * 2.5 * flops / mm_rate / t_b:5.1f}%  sdpa {tt_b * 1e3:7.3f}  ratio {t_b / tt_b:5.2f}  "
                         f"err dq {err[0]:.1e} dk {err[1]:.1e} dv {err[2]:.1e}")
            if not all(e < 2e-2 for e in err):
                lines.append(f"{label:<10} bwd {bwd_mode} {shape}: WRONG RESULT vs SDPA (relative errors {err})")
    L("tsl_set_compute_stream", u64(0))
    print(f"{torch.cuda.get_device_name()}: bf16 matmul {mm_rate / 1e12:.0f} TFLOP/s")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
