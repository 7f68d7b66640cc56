"""cuBLASLt GEMM (all transpose combinations, f32/bf16 outputs, bias epilogue, beta accumulate), the
fallback kernel, the LoRA linear forward/backward, and the grouped LoRA linears (projections sharing
x: tsl_lora_down_group, tsl_linear_fwd_xa, tsl_linear_bwd_xa, tsl_lora_up_group_bwd) against PyTorch
autograd in float64."""
import ctypes
import os

import torch

from common import BF16, BF16_TOL, F32, call, f32, i64, lib, poison, ptr, run, status_of


def gemm_case(rep, ta, tb, M, N, K, c_dtype, beta, bias, tag):
    a = torch.randn((K, M) if ta else (M, K), device="cuda").bfloat16()
    b = torch.randn((N, K) if tb else (K, N), device="cuda").bfloat16()
    opa = a.double().t() if ta else a.double()
    opb = b.double().t() if tb else b.double()
    tdt = torch.float32 if c_dtype == F32 else torch.bfloat16
    c0 = torch.randn(M, N, device="cuda").to(tdt)
    c = c0.clone() if beta else poison((M, N), tdt)
    bias_t = torch.randn(N, device="cuda").to(tdt) if bias else None
    ref = 0.5 * (opa @ opb) + (beta * c0.double() if beta else 0) + (bias_t.double() if bias else 0)
    call("tsl_gemm", int(ta), int(tb), i64(M), i64(N), i64(K), f32(0.5), ptr(a), ptr(b), BF16, f32(beta), ptr(c),
         c_dtype, ptr(bias_t))
    rep.check(f"gemm{tag} ta={int(ta)} tb={int(tb)} {M}x{N}x{K} out={'f32' if c_dtype == F32 else 'bf16'}"
              f"{' beta' if beta else ''}{' bias' if bias else ''}", c, ref, 1e-3 if c_dtype == F32 else BF16_TOL)


def check_gemm(rep, tag=""):
    for ta in (False, True):
        for tb in (False, True):
            gemm_case(rep, ta, tb, 257, 384, 200, F32, 0.0, False, tag)
    gemm_case(rep, False, True, 1000, 4096, 1024, BF16, 0.0, True, tag)
    gemm_case(rep, True, False, 16, 4096, 2048, F32, 1.0, False, tag)  # LoRA dA shape, accumulating
    gemm_case(rep, False, True, 33, 17, 5, BF16, 1.0, False, tag)      # odd sizes: unaligned rows


def check_linear(rep, T=1000, IN=1024, OUT=768, R=16, S=2.0, tag=""):
    x = torch.randn(T, IN, device="cuda").bfloat16()
    w = (torch.randn(OUT, IN, device="cuda") / IN ** 0.5).bfloat16()
    bias = torch.randn(OUT, device="cuda")
    a = torch.randn(R, IN, device="cuda") / IN ** 0.5
    b = torch.randn(OUT, R, device="cuda") * 0.1  # nonzero (PEFT starts at zero; trained B is not)
    xd = x.double().requires_grad_(True)
    ad, bd = a.double().requires_grad_(True), b.double().requires_grad_(True)
    yref = xd @ w.double().t() + bias.double() + S * (xd @ ad.t()) @ bd.t()
    y = poison((T, OUT), torch.bfloat16)
    call("tsl_linear_fwd", ptr(x), ptr(w), ptr(bias), F32, ptr(a), ptr(b), f32(S), i64(T), i64(IN), i64(OUT), R, ptr(y))
    rep.check(f"linear fwd (bias f32, LoRA){tag}", y, yref, BF16_TOL)
    y2 = poison((T, OUT), torch.bfloat16)
    bias16 = bias.bfloat16()
    call("tsl_linear_fwd", ptr(x), ptr(w), ptr(bias16), BF16, None, None, f32(0), i64(T), i64(IN), i64(OUT), 0, ptr(y2))
    rep.check(f"linear fwd (bias epilogue, no LoRA){tag}", y2, x.double() @ w.double().t() + bias16.double(), BF16_TOL)

    dy = torch.randn(T, OUT, device="cuda").bfloat16()
    yref.backward(dy.double())
    dx = poison((T, IN), torch.bfloat16)
    da0, db0 = torch.randn(R, IN, device="cuda"), torch.randn(OUT, R, device="cuda")
    da, db = da0.clone(), db0.clone()
    call("tsl_linear_bwd", ptr(dy), ptr(x), ptr(w), ptr(a), ptr(b), f32(S), i64(T), i64(IN), i64(OUT), R, ptr(dx),
         ptr(da), ptr(db))
    rep.check(f"linear bwd dx{tag}", dx, xd.grad, BF16_TOL)
    rep.check(f"linear bwd dA (accumulated){tag}", da - da0, ad.grad, BF16_TOL)
    rep.check(f"linear bwd dB (accumulated){tag}", db - db0, bd.grad, BF16_TOL)


def u64s(ptrs):
    return (ctypes.c_uint64 * len(ptrs))(*ptrs)


def check_linear_group(rep, tag, T, IN, OUTS, RS, SCALES, frozen=()):
    """One group through the grouped calls as the CUDA backend orchestrates them; adapters listed in
    `frozen` get no dA/dB (their dA must stay untouched, their share of dx must still count)."""
    n = len(OUTS)
    x = torch.randn(T, IN, device="cuda").bfloat16()
    ws = [(torch.randn(o, IN, device="cuda") / IN ** 0.5).bfloat16() for o in OUTS]
    biases = [torch.randn(o, device="cuda") for o in OUTS]
    As = [torch.randn(r, IN, device="cuda") / IN ** 0.5 for r in RS]
    Bs = [torch.randn(o, r, device="cuda") * 0.1 for o, r in zip(OUTS, RS)]
    col0, ld = [sum(RS[:i]) for i in range(n)], sum(RS)
    cols = [slice(col0[i], col0[i] + RS[i]) for i in range(n)]  # adapter i's block of xa and g [T, Σr]
    a_ptrs, ranks = u64s([a.data_ptr() for a in As]), (ctypes.c_int32 * n)(*RS)

    xa = poison((T, ld), torch.bfloat16)
    call("tsl_lora_down_group", n, a_ptrs, ranks, ptr(x), i64(T), i64(IN), ptr(xa))
    rep.check(f"{tag}: down group xa", xa, torch.cat([x.double() @ a.double().t() for a in As], dim=1), BF16_TOL)

    xd = x.double().requires_grad_(True)
    ad = [a.double().requires_grad_(True) for a in As]
    bd = [b.double().requires_grad_(True) for b in Bs]
    loss = 0
    dys = [torch.randn(T, o, device="cuda").bfloat16() for o in OUTS]
    for i in range(n):
        yref = xd @ ws[i].double().t() + biases[i].double() + SCALES[i] * (xd @ ad[i].t()) @ bd[i].t()
        y = poison((T, OUTS[i]), torch.bfloat16)
        call("tsl_linear_fwd_xa", ptr(x), ptr(ws[i]), ptr(biases[i]), F32, ptr(xa[:, cols[i]]), i64(ld), ptr(Bs[i]),
             f32(SCALES[i]), i64(T), i64(IN), i64(OUTS[i]), RS[i], ptr(y))
        rep.check(f"{tag}: fwd_xa y{i}", y, yref, BF16_TOL)
        loss = loss + (yref * dys[i].double()).sum()
    loss.backward()

    dx, g = poison((T, IN), torch.bfloat16), poison((T, ld), torch.bfloat16)
    da0 = [torch.randn(r, IN, device="cuda") for r in RS]
    db0 = [torch.randn(o, r, device="cuda") for o, r in zip(OUTS, RS)]
    da, db = [t.clone() for t in da0], [t.clone() for t in db0]
    for i in range(n):
        call("tsl_linear_bwd_xa", ptr(dys[i]), ptr(ws[i]), ptr(Bs[i]), f32(SCALES[i]), i64(T), i64(IN), i64(OUTS[i]), RS[i],
             ptr(xa[:, cols[i]]), i64(ld), f32(0 if i == 0 else 1), ptr(dx), ptr(g[:, cols[i]]),
             None if i in frozen else ptr(db[i]))
    g_ref = torch.cat([SCALES[i] * (dys[i].double() @ Bs[i].double()) for i in range(n)], dim=1)
    rep.check(f"{tag}: bwd_xa g", g, g_ref, BF16_TOL)
    da_ptrs = u64s([0 if i in frozen else da[i].data_ptr() for i in range(n)])
    call("tsl_lora_up_group_bwd", n, a_ptrs, ranks, da_ptrs, ptr(x), ptr(g), i64(T), i64(IN), ptr(dx))
    rep.check(f"{tag}: dx (summed over the group)", dx, xd.grad, BF16_TOL)
    for i in range(n):
        if i in frozen:
            rep.expect(f"{tag}: frozen adapter {i} keeps dA, dB", torch.equal(da[i], da0[i]) and torch.equal(db[i], db0[i]))
            continue
        rep.check(f"{tag}: dA{i} (accumulated)", da[i] - da0[i], ad[i].grad, BF16_TOL)
        rep.check(f"{tag}: dB{i} (accumulated)", db[i] - db0[i], bd[i].grad, BF16_TOL)


def check_linear_group_refusals(rep):
    one = torch.zeros(4, 64, device="cuda")
    x, xa = torch.zeros(8, 64, device="cuda").bfloat16(), torch.zeros(8, 4, device="cuda").bfloat16()
    for count in (0, 9):
        st, msg = status_of("tsl_lora_down_group", count, u64s([one.data_ptr()] * 9), (ctypes.c_int32 * 9)(*[4] * 9),
                            ptr(x), i64(8), i64(64), ptr(xa))
        rep.expect(f"down group refuses count {count}", st == 3 and "tsl_lora_down_group" in msg, msg)
    st, msg = status_of("tsl_lora_up_group_bwd", 1, u64s([0]), (ctypes.c_int32 * 1)(4), None, ptr(x), ptr(xa), i64(8),
                        i64(64), None)
    rep.expect("up group refuses a null adapter", st == 3 and "adapter 0" in msg, msg)
    st, msg = status_of("tsl_linear_bwd_xa", ptr(x), None, None, f32(1), i64(8), i64(64), i64(64), 0, None, i64(0),
                        f32(0), ptr(x), None, None)
    rep.expect("bwd_xa refuses dx without w", st == 3 and "tsl_linear_bwd_xa" in msg and "w" in msg, msg)
    st, msg = status_of("tsl_linear_fwd_xa", ptr(x), ptr(x), None, F32, ptr(xa), i64(2), ptr(one), f32(1), i64(8), i64(64),
                        i64(64), 4, ptr(x))
    rep.expect("fwd_xa refuses a row stride below r", st == 3 and "ld_xa" in msg, msg)


def body(rep):
    lib()
    st = lib().tsl_gemm_available()
    rep.expect("cuBLASLt loads", st == 0, lib().tsl_last_error().decode())
    check_gemm(rep)
    check_linear(rep)
    # Outputs of 48 MB and more take the rank-r update kernel (lora_lowrank.cu) for y and dx; odd
    # widths its element-wise path.
    check_linear(rep, 8192, 4096, 4096, 16, 2.0, " [update kernel]")
    check_linear(rep, 6000, 4096, 4100, 8, 0.5, " [update kernel, N % 8 != 0]")
    check_linear_group(rep, "gate/up [update kernel]", 4096, 1024, [8192, 8192], [16, 16], [2.0, 0.5])
    check_linear_group(rep, "one adapter [update kernel]", 8192, 4096, [4096], [16], [1.0])
    check_linear_group(rep, "q/k/v (GQA) r 16/8/16", 300, 512, [512, 128, 128], [16, 8, 16], [2.0, 0.5, 1.0])
    check_linear_group(rep, "q/k/v, k frozen", 257, 256, [256, 64, 64], [8, 8, 8], [1.0, 1.0, 2.0], frozen=(1,))
    check_linear_group(rep, "one adapter", 64, 256, [512], [16], [2.0])
    check_linear_group_refusals(rep)
    os.environ["TSLOTH_GEMM"] = "fallback"
    try:
        check_gemm(rep, tag=" (fallback)")
    finally:
        del os.environ["TSLOTH_GEMM"]


if __name__ == "__main__":
    run("gemm (cuBLASLt and fallback), LoRA linear", body)
