"""Micro-benchmarks of the kernels-cuda ops, each with its two numbers (METHOD.md): the floor from
bytes (copy bandwidth measured here, in this run) or FLOPs (bf16 matmul rate measured here through
PyTorch), against the measured median. PyTorch's own op on the same shapes is printed beside ours
where one exists. Prints a table last; writes JSON to $OUT/bench_ops.json when OUT is set.
   python3 kernels-cuda/dev/bench_ops.py"""
import ctypes
import json
import os
import sys

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "test"))
from common import BF16, F32, f32, i64, lib, ptr, u64  # noqa: E402
from test_ops import nf4_quantize  # noqa: E402


def bench(fn, reps=20, warmup=3):
    for _ in range(warmup):
        fn()
    torch.cuda.synchronize()
    times = []
    for _ in range(reps):
        s, e = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        s.record()
        fn()
        e.record()
        e.synchronize()
        times.append(s.elapsed_time(e) / 1e3)
    times.sort()
    return times[len(times) // 2]


def L(name, *args):
    fn = getattr(lib(), name)
    fn.restype = ctypes.c_int32
    st = fn(*args)
    if st:
        raise RuntimeError(f"{name}: {lib().tsl_last_error().decode()}")


rows = []


def row(name, t, floor_s, kind, torch_t=None):
    rows.append(dict(op=name, ms=t * 1e3, floor_ms=floor_s * 1e3, pct_of_floor=100 * floor_s / t, bound=kind,
                     torch_ms=None if torch_t is None else torch_t * 1e3))
    print(f"  {name:<44} {t * 1e3:9.3f} ms  floor {floor_s * 1e3:8.3f} ms ({kind}) {100 * floor_s / t:5.1f}%"
          + ("" if torch_t is None else f"  torch {torch_t * 1e3:8.3f} ms"), flush=True)


def main():
    lib()
    L("tsl_init", 0)
    # A side stream shared by PyTorch and the library, so torch's events time our kernels (the legacy
    # default stream is handle 0, which tsl_set_compute_stream reads as "the library's own stream").
    stream = torch.cuda.Stream()
    torch.cuda.set_stream(stream)
    L("tsl_set_compute_stream", u64(stream.cuda_stream))
    name = torch.cuda.get_device_name()
    print(f"card: {name}")
    # Ceilings measured here: device copy (bytes read + written) and a large bf16 matmul.
    big = torch.empty(1 << 30, dtype=torch.uint8, device="cuda").random_(0, 255)
    dst = torch.empty_like(big)
    t = bench(lambda: dst.copy_(big))
    copy_bw = 2 * big.numel() / t
    a = torch.randn(8192, 8192, device="cuda").bfloat16()
    b = torch.randn(8192, 8192, device="cuda").bfloat16()
    t = bench(lambda: a @ b, reps=10)
    mm_rate = 2 * 8192 ** 3 / t
    print(f"ceilings: copy {copy_bw / 1e12:.2f} TB/s, bf16 matmul {mm_rate / 1e12:.0f} TFLOP/s")
    del big, dst

    # NF4 dequantize, Llama-3.1-8B MLP weight [14336, 4096], double-quantized absmax.
    w = torch.randn(14336, 4096, device="cuda") * 0.02
    n = w.numel()
    qs = nf4_quantize(w)
    out = torch.empty(n, dtype=torch.bfloat16, device="cuda")
    args = (ptr(qs["packed"]), u64(n), ctypes.c_int32(64), ptr(None), ptr(qs["q"]), ptr(qs["nested_absmax"]),
            ptr(qs["code8"]), ctypes.c_int32(256), f32(qs["offset"]), ptr(out), ctypes.c_int32(BF16))
    t = bench(lambda: L("tsl_nf4_dequantize", *args))
    nbytes = n // 2 + n * 2 + n // 64
    row("nf4 dequant 14336x4096 -> bf16", t, nbytes / copy_bw, "bytes")

    T, H, I = 8192, 4096, 14336
    x = torch.randn(T, H, device="cuda").bfloat16()
    wn = torch.randn(H, device="cuda").bfloat16()
    y = torch.empty_like(x)
    rstd = torch.empty(T, device="cuda")
    t = bench(lambda: L("tsl_rmsnorm_fwd", ptr(x), ptr(wn), BF16, i64(T), i64(H), f32(1e-5), ptr(y), ptr(rstd)))
    tt = bench(lambda: F.rms_norm(x, (H,), wn, 1e-5))
    row("rmsnorm fwd 8192x4096", t, 2 * x.numel() * 2 / copy_bw, "bytes", tt)
    dx = torch.empty_like(x)
    t = bench(lambda: L("tsl_rmsnorm_bwd", ptr(x), ptr(x), ptr(wn), BF16, ptr(rstd), i64(T), i64(H), ptr(dx)))
    row("rmsnorm bwd 8192x4096", t, 3 * x.numel() * 2 / copy_bw, "bytes")

    g = torch.randn(T, I, device="cuda").bfloat16()
    u = torch.randn(T, I, device="cuda").bfloat16()
    h = torch.empty_like(g)
    t = bench(lambda: L("tsl_swiglu_fwd", ptr(g), ptr(u), u64(g.numel()), ptr(h)))
    tt = bench(lambda: F.silu(g) * u)
    row("swiglu fwd 8192x14336", t, 3 * g.numel() * 2 / copy_bw, "bytes", tt)
    dg, du = torch.empty_like(g), torch.empty_like(g)
    t = bench(lambda: L("tsl_swiglu_bwd", ptr(h), ptr(g), ptr(u), u64(g.numel()), ptr(dg), ptr(du)))
    row("swiglu bwd 8192x14336", t, 5 * g.numel() * 2 / copy_bw, "bytes")
    del g, u, h, dg, du

    heads, D = 32, 128
    q = torch.randn(T, heads * D, device="cuda").bfloat16()
    pos = torch.arange(T, device="cuda", dtype=torch.int32)
    inv = 1.0 / (500000.0 ** (torch.arange(0, D, 2, device="cuda").float() / D))
    qo = torch.empty_like(q)
    t = bench(lambda: L("tsl_rope", ptr(q), ptr(pos), ptr(inv), i64(T), heads, D, 1, ptr(qo)))
    row("rope fwd 8192 x 32 heads x 128", t, 2 * q.numel() * 2 / copy_bw, "bytes")

    # GEMM (the base projection of an 8B MLP at 8192 tokens) through our cuBLASLt path vs torch.
    wg = torch.randn(I, H, device="cuda").bfloat16()
    yg = torch.empty(T, I, device="cuda").bfloat16()
    t = bench(lambda: L("tsl_gemm", 0, 1, i64(T), i64(I), i64(H), f32(1), ptr(x), ptr(wg), BF16, f32(0), ptr(yg), BF16, None))
    tt = bench(lambda: x @ wg.t())
    row("gemm 8192x14336x4096 (x·Wᵀ)", t, 2 * T * I * H / mm_rate, "flops", tt)

    # LoRA linear fwd + bwd, r=16, 8B q_proj shape.
    r = 16
    wq = torch.randn(H, H, device="cuda").bfloat16()
    la = torch.randn(r, H, device="cuda") * 0.01
    lb = torch.randn(H, r, device="cuda") * 0.01
    ylin = torch.empty(T, H, device="cuda").bfloat16()
    t = bench(lambda: L("tsl_linear_fwd", ptr(x), ptr(wq), None, BF16, ptr(la), ptr(lb), f32(2), i64(T), i64(H), i64(H), r, ptr(ylin)))
    row("linear+LoRA fwd 8192x4096x4096 r16", t, 2 * T * H * H / mm_rate, "flops")
    dxl = torch.empty_like(x)
    gla, glb = torch.zeros_like(la), torch.zeros_like(lb)
    t = bench(lambda: L("tsl_linear_bwd", ptr(ylin), ptr(x), ptr(wq), ptr(la), ptr(lb), f32(2), i64(T), i64(H), i64(H), r,
                        ptr(dxl), ptr(gla), ptr(glb)))
    row("linear+LoRA bwd 8192x4096x4096 r16", t, 2 * T * H * H / mm_rate, "flops")

    # Attention, Llama-3.1-8B heads (32 q, 8 kv, D 128), 4 x 2048 packed and 1 x 8192.
    for lens in ([2048] * 4, [8192]):
        Tn = sum(lens)
        q = torch.randn(Tn, 32 * D, device="cuda").bfloat16()
        k = torch.randn(Tn, 8 * D, device="cuda").bfloat16()
        v = torch.randn(Tn, 8 * D, device="cuda").bfloat16()
        cu = torch.tensor([0] + [sum(lens[: i + 1]) for i in range(len(lens))], device="cuda", dtype=torch.int32)
        o = torch.empty_like(q)
        lse = torch.empty(32, Tn, device="cuda")
        fargs = (ptr(q), ptr(k), ptr(v), ptr(cu), len(lens), max(lens), i64(Tn), 32, 8, D, f32(D ** -0.5), ptr(o), ptr(lse))
        flops = sum(2 * n * n * D * 32 for n in lens)  # causal: half of 4·n²·D per head
        os.environ["TSLOTH_ATTENTION"] = "simple"
        t = bench(lambda: L("tsl_attention_fwd", *fargs), reps=3, warmup=1)
        del os.environ["TSLOTH_ATTENTION"]
        row(f"attention fwd (CUDA cores) {len(lens)}x{max(lens)}", t, flops / mm_rate, "flops")
        os.environ["TSLOTH_ATTENTION"] = "wmma"
        t = bench(lambda: L("tsl_attention_fwd", *fargs), reps=5)
        del os.environ["TSLOTH_ATTENTION"]
        row(f"attention fwd (WMMA) {len(lens)}x{max(lens)}", t, flops / mm_rate, "flops")
        t = bench(lambda: L("tsl_attention_fwd", *fargs), reps=5)
        B, n = len(lens), lens[0]
        qt = q.view(B, n, 32, D).transpose(1, 2)
        kt = k.view(B, n, 8, D).transpose(1, 2)
        vt = v.view(B, n, 8, D).transpose(1, 2)
        tt = bench(lambda: F.scaled_dot_product_attention(qt, kt, vt, is_causal=True, enable_gqa=True), reps=5)
        row(f"attention fwd (mma.sync) {len(lens)}x{max(lens)}", t, flops / mm_rate, "flops", tt)
        dq, dk, dv = torch.empty_like(q), torch.empty_like(k), torch.empty_like(v)
        bargs = (ptr(o), ptr(q), ptr(k), ptr(v), ptr(o), ptr(lse), ptr(cu), len(lens), max(lens), i64(Tn), 32, 8, D,
                 f32(D ** -0.5), ptr(dq), ptr(dk), ptr(dv))
        os.environ["TSLOTH_ATTENTION"] = "wmma"
        t = bench(lambda: L("tsl_attention_bwd", *bargs), reps=3, warmup=1)
        del os.environ["TSLOTH_ATTENTION"]
        row(f"attention bwd (WMMA) {len(lens)}x{max(lens)}", t, 2.5 * flops / mm_rate, "flops")
        t = bench(lambda: L("tsl_attention_bwd", *bargs), reps=3, warmup=1)
        qr, kr, vr = (z.detach().requires_grad_(True) for z in (qt, kt, vt))
        out = F.scaled_dot_product_attention(qr, kr, vr, is_causal=True, enable_gqa=True)
        go = torch.randn_like(out)
        tt = bench(lambda: torch.autograd.grad(out, (qr, kr, vr), go, retain_graph=True), reps=5)
        row(f"attention bwd (mma.sync) {len(lens)}x{max(lens)}", t, 2.5 * flops / mm_rate, "flops", tt)

    # Cross-entropy with the Llama-3 head (V 128256), 8192 tokens, chunks of 1024.
    V = 128256
    head = (torch.randn(V, H, device="cuda") * 0.01).bfloat16()
    labels = torch.randint(0, V, (T,), device="cuda", dtype=torch.int32)
    loss = torch.empty(1, device="cuda")
    lse = torch.empty(T, device="cuda")
    t = bench(lambda: L("tsl_ce_lmhead_fwd", ptr(x), ptr(head), ptr(labels), i64(T), i64(H), i64(V), i64(1024), ptr(loss), ptr(lse)), reps=5)
    row("ce+lm head fwd T8192 V128256", t, 2 * T * H * V / mm_rate, "flops")
    dh = torch.empty_like(x)
    t = bench(lambda: L("tsl_ce_lmhead_bwd", ptr(x), ptr(head), ptr(labels), ptr(lse), i64(T), i64(H), i64(V), i64(1024),
                        f32(1.0 / T), ptr(dh)), reps=5)
    row("ce+lm head bwd T8192 V128256", t, 4 * T * H * V / mm_rate, "flops")

    L("tsl_set_compute_stream", u64(0))
    out_dir = os.environ.get("OUT")
    if out_dir:
        with open(os.path.join(out_dir, "bench_ops.json"), "w") as f:
            json.dump(dict(card=name, copy_TBps=copy_bw / 1e12, matmul_TFLOPs=mm_rate / 1e12, rows=rows), f, indent=1)
    print(f"\n{name}: copy {copy_bw / 1e12:.2f} TB/s, bf16 mm {mm_rate / 1e12:.0f} TFLOP/s")
    print(f"{'op':<44} {'ms':>9} {'floor':>9} {'%floor':>7} {'torch ms':>9}")
    for r_ in rows:
        tm = "" if r_["torch_ms"] is None else f"{r_['torch_ms']:9.3f}"
        print(f"{r_['op']:<44} {r_['ms']:9.3f} {r_['floor_ms']:9.3f} {r_['pct_of_floor']:6.1f}% {tm}")


if __name__ == "__main__":
    main()
