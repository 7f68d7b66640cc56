"""cuBLASLt GEMM (all transpose combinations, f32/bf16 outputs, bias epilogue, beta accumulate), the
fallback kernel, and the LoRA linear forward/backward against PyTorch autograd in float64."""
import os

import torch

from common import BF16, BF16_TOL, F32, call, f32, i64, lib, poison, ptr, run


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


def check_linear(rep):
    T, IN, OUT, R, S = 1000, 1024, 768, 16, 2.0
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
    rep.check("linear fwd (bias f32, LoRA)", y, yref, BF16_TOL)
    y2 = poison((T, OUT), torch.bfloat16)
    bias16 = bias.bfloat16()
    call("tsl_linear_fwd", ptr(x), ptr(w), ptr(bias16), BF16, None, None, f32(0), i64(T), i64(IN), i64(OUT), 0, ptr(y2))
    rep.check("linear fwd (bias epilogue, no LoRA)", y2, x.double() @ w.double().t() + bias16.double(), BF16_TOL)

    dy = torch.randn(T, OUT, device="cuda").bfloat16()
    yref.backward(dy.double())
    dx = poison((T, IN), torch.bfloat16)
    da0, db0 = torch.randn(R, IN, device="cuda"), torch.randn(OUT, R, device="cuda")
    da, db = da0.clone(), db0.clone()
    call("tsl_linear_bwd", ptr(dy), ptr(x), ptr(w), ptr(a), ptr(b), f32(S), i64(T), i64(IN), i64(OUT), R, ptr(dx),
         ptr(da), ptr(db))
    rep.check("linear bwd dx", dx, xd.grad, BF16_TOL)
    rep.check("linear bwd dA (accumulated)", da - da0, ad.grad, BF16_TOL)
    rep.check("linear bwd dB (accumulated)", db - db0, bd.grad, BF16_TOL)


def body(rep):
    lib()
    st = lib().tsl_gemm_available()
    rep.expect("cuBLASLt loads", st == 0, lib().tsl_last_error().decode())
    check_gemm(rep)
    check_linear(rep)
    os.environ["TSLOTH_GEMM"] = "fallback"
    try:
        check_gemm(rep, tag=" (fallback)")
    finally:
        del os.environ["TSLOTH_GEMM"]


if __name__ == "__main__":
    run("gemm (cuBLASLt and fallback), LoRA linear", body)
