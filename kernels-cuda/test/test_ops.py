"""Elementwise, NF4 dequantize, embedding, RMSNorm, RoPE, SwiGLU and AdamW against PyTorch (float64
references) on fresh random inputs, forward and backward."""
import ctypes

import torch

from common import BF16, BF16_TOL, F16, F32, F32_TOL, call, f32, i64, poison, ptr, run, u64

NF4_CODE = [-1.0, -0.6961928009986877, -0.5250730514526367, -0.39491748809814453, -0.28444138169288635,
            -0.18477343022823334, -0.09105003625154495, 0.0, 0.07958029955625534, 0.16093020141124725,
            0.24611230194568634, 0.33791524171829224, 0.44070982933044006, 0.5626170039176941,
            0.7229568362236023, 1.0]


def nf4_quantize(w, blocksize=64, nested_blocksize=256):
    """bitsandbytes layout: blocks of 64, nearest code, even index in the high nibble; absmax
    double-quantized (offset = mean, 8-bit blockwise over 256 with a 256-entry code)."""
    flat = w.reshape(-1).double()
    n = flat.numel()
    nblocks = (n + blocksize - 1) // blocksize
    padded = torch.zeros(nblocks * blocksize, dtype=torch.float64, device=w.device)
    padded[:n] = flat
    blocks = padded.view(nblocks, blocksize)
    absmax = blocks.abs().amax(dim=1).clamp_min(1e-12)
    code = torch.tensor(NF4_CODE, dtype=torch.float64, device=w.device)
    idx = ((blocks / absmax[:, None]).unsqueeze(-1) - code).abs().argmin(-1).reshape(-1)[:n].to(torch.uint8)
    packed = (idx[0::2] << 4) | idx[1::2]
    offset = absmax.mean()
    centered = absmax - offset
    nn = (nblocks + nested_blocksize - 1) // nested_blocksize
    cpad = torch.zeros(nn * nested_blocksize, dtype=torch.float64, device=w.device)
    cpad[:nblocks] = centered
    nested_absmax = cpad.view(nn, nested_blocksize).abs().amax(1).clamp_min(1e-12)
    code8 = torch.linspace(-1, 1, 256, dtype=torch.float64, device=w.device) ** 3  # dense near 0, like bnb's dynamic map
    q = ((cpad.view(nn, nested_blocksize) / nested_absmax[:, None]).unsqueeze(-1) - code8).abs().argmin(-1)
    q = q.reshape(-1)[:nblocks].to(torch.uint8)
    absmax_dq = code8[q.long()] * nested_absmax[torch.arange(nblocks, device=w.device) // nested_blocksize] + offset
    return dict(packed=packed.contiguous(), absmax=absmax.float(), q=q.contiguous(), nested_absmax=nested_absmax.float(),
                code8=code8.float(), offset=float(offset), idx=idx, absmax_dq=absmax_dq.float())


def nf4_reference(qs, n, blocksize, double_quant):
    code = torch.tensor(NF4_CODE, dtype=torch.float64, device="cuda")
    am = (qs["absmax_dq"] if double_quant else qs["absmax"]).double()
    return code[qs["idx"].long()] * am[torch.arange(n, device="cuda") // blocksize]


def nf4_call(qs, n, blocksize, nested_blocksize, dq, out, dt):
    call("tsl_nf4_dequantize", ptr(qs["packed"]), u64(n), ctypes.c_int32(blocksize),
         ptr(None if dq else qs["absmax"]), ptr(qs["q"] if dq else None),
         ptr(qs["nested_absmax"] if dq else None), ptr(qs["code8"] if dq else None), ctypes.c_int32(nested_blocksize),
         f32(qs["offset"]), ptr(out), ctypes.c_int32(dt))


def check_nf4(rep):
    # (77, 98): a tail past the last 8-value chunk; (129, 200): a partial warp span; (4099, 2050): several
    # waves of blocks and a partial last absmax block, ending in a 6-value tail; (5, 40): less than one
    # warp's span; (3, 6): two chunks and a 2-value tail.
    for shape in [(1024, 4096), (77, 98), (129, 200), (4099, 2050), (5, 40), (3, 6)]:
        w = torch.randn(shape, device="cuda") * 0.02
        n = w.numel()
        qs = nf4_quantize(w)
        for dq in (False, True):
            ref = nf4_reference(qs, n, 64, dq)
            for dt, tol in ((BF16, 5e-3), (F32, 1e-6)):
                out = poison((n,), torch.bfloat16 if dt == BF16 else torch.float32)
                nf4_call(qs, n, 64, 256, dq, out, dt)
                rep.check(f"nf4 {shape} double_quant={dq} out={'bf16' if dt == BF16 else 'f32'}", out, ref, tol)
    # Other blocksizes: powers of two (16 .. 2048, f32 or double-quantized absmax) index absmax blocks by
    # shifts; 96, or a nested blocksize of 100, by division.
    w = torch.randn(129, 200, device="cuda") * 0.02
    n = w.numel()
    for bs, nbs, dq in [(32, 256, True), (32, 256, False), (128, 256, True), (256, 256, True), (2048, 256, True),
                        (2048, 256, False), (16, 256, True), (96, 256, True), (64, 100, True)]:
        qs = nf4_quantize(w, blocksize=bs, nested_blocksize=nbs)
        out = poison((n,), torch.bfloat16)
        nf4_call(qs, n, bs, nbs, dq, out, BF16)
        rep.check(f"nf4 (129, 200) blocksize={bs} nested={nbs} double_quant={dq} out=bf16", out,
                  nf4_reference(qs, n, bs, dq), 5e-3)
    # An output that is not 16-byte aligned takes the element-wise kernel.
    qs = nf4_quantize(w)
    buf = poison((n + 1,), torch.bfloat16)
    nf4_call(qs, n, 64, 256, True, buf[1:], BF16)
    rep.check("nf4 (129, 200) output 2 bytes past 16-byte alignment", buf[1:], nf4_reference(qs, n, 64, True), 5e-3)


def check_elementwise(rep):
    n = 100_003
    a = torch.randn(n, device="cuda")
    b = torch.randn(n, device="cuda")
    out = poison((n,), torch.bfloat16)
    call("tsl_cast", ptr(a), F32, ptr(out), BF16, u64(n))
    rep.check("cast f32->bf16", out, a, 4e-3)
    back = poison((n,), torch.float16)
    call("tsl_cast", ptr(out), BF16, ptr(back), F16, u64(n))
    rep.check("cast bf16->f16", back, out.float(), 1e-3)
    s = poison((n,), torch.float32)
    call("tsl_add", ptr(a), ptr(b), ptr(s), F32, u64(n))
    rep.check("add f32", s, a.double() + b.double(), F32_TOL)
    d = a.clone()
    b16 = b.bfloat16()
    call("tsl_axpy", ptr(d), F32, ptr(b16), BF16, f32(-0.37), u64(n))
    rep.check("axpy f32 += alpha*bf16", d, a.double() - 0.37 * b16.double(), F32_TOL)
    # bf16 add and axpy: 16-byte aligned buffers take the 8-wide kernel (plus a scalar tail of 3), a view
    # one element in takes the scalar kernel; both must give the same bits.
    a16, c16 = a.bfloat16(), (b * 0.5).bfloat16()
    wide = poison((n,), torch.bfloat16)
    call("tsl_add", ptr(a16), ptr(b16), ptr(wide), BF16, u64(n))
    rep.check("add bf16 (8-wide + tail)", wide, a16.double() + b16.double(), 4e-3)
    sa, sb, so = (torch.cat([torch.zeros(1, device="cuda", dtype=torch.bfloat16), t]) for t in (a16, b16, poison((n,), torch.bfloat16)))
    call("tsl_add", ptr(sa[1:]), ptr(sb[1:]), ptr(so[1:]), BF16, u64(n))
    rep.expect("add bf16: unaligned (scalar) path has the same bits", torch.equal(so[1:], wide))
    d16 = a16.clone()
    call("tsl_axpy", ptr(d16), BF16, ptr(c16), BF16, f32(-0.37), u64(n))
    rep.check("axpy bf16 += alpha*bf16 (8-wide + tail)", d16, a16.double() - 0.37 * c16.double(), 4e-3)
    sd, sc = (torch.cat([torch.zeros(1, device="cuda", dtype=torch.bfloat16), t]) for t in (a16, c16))
    call("tsl_axpy", ptr(sd[1:]), BF16, ptr(sc[1:]), BF16, f32(-0.37), u64(n))
    rep.expect("axpy bf16: unaligned (scalar) path has the same bits", torch.equal(sd[1:], d16))
    c = a.clone()
    call("tsl_scale", ptr(c), F32, f32(1.7), u64(n))
    rep.check("scale f32", c, a.double() * 1.7, F32_TOL)
    ts = [torch.randn(1000, device="cuda"), torch.randn(3, 77, device="cuda").bfloat16(), torch.randn(12345, device="cuda")]
    ptrs = (ctypes.c_void_p * 3)(*[t.data_ptr() for t in ts])
    sizes = (ctypes.c_uint64 * 3)(*[t.numel() for t in ts])
    dts = (ctypes.c_int32 * 3)(F32, BF16, F32)
    outv = ctypes.c_double()
    call("tsl_sum_squares", ptrs, sizes, dts, 3, ctypes.byref(outv))
    ref = sum((t.double() ** 2).sum().item() for t in ts)
    rep.check("sum of squares (3 tensors, mixed dtypes)", torch.tensor([outv.value]), torch.tensor([ref]), 1e-9)


def check_embedding(rep):
    V, H, T = 5000, 384, 777
    for tdt in (F32, BF16):
        table = torch.randn(V, H, device="cuda").to(torch.float32 if tdt == F32 else torch.bfloat16)
        ids = torch.randint(0, V, (T,), device="cuda", dtype=torch.int32)
        ids[:50] = ids[50:100]  # duplicates exercise the atomic scatter-add
        out = poison((T, H), torch.bfloat16)
        call("tsl_embedding_fwd", ptr(table), tdt, ptr(ids), i64(T), i64(V), i64(H), ptr(out))
        rep.check(f"embedding fwd table={'f32' if tdt == F32 else 'bf16'}", out, table.double()[ids.long()], 4e-3)
    dy = torch.randn(T, H, device="cuda").bfloat16()
    dtable = torch.randn(V, H, device="cuda")
    ref = dtable.double().index_add(0, ids.long(), dy.double())
    call("tsl_embedding_bwd", ptr(dy), ptr(ids), i64(T), i64(V), i64(H), ptr(dtable))
    rep.check("embedding bwd accumulates", dtable, ref, 1e-6)


def check_rmsnorm(rep):
    for T, H in ((513, 4096), (4096, 128), (37, 100)):  # model width; Qwen3 q/k-norm rows; the scalar path
        x = (torch.randn(T, H, device="cuda") * 3).bfloat16()
        w = (1 + 0.1 * torch.randn(H, device="cuda")).bfloat16()
        eps = 1e-5
        xd = x.double().requires_grad_(True)
        rstd_ref = torch.rsqrt((xd.detach() ** 2).mean(-1) + eps)
        yref = xd * torch.rsqrt((xd ** 2).mean(-1, keepdim=True) + eps) * w.double()
        y = poison((T, H), torch.bfloat16)
        rstd = poison((T,), torch.float32)
        call("tsl_rmsnorm_fwd", ptr(x), ptr(w), BF16, i64(T), i64(H), f32(eps), ptr(y), ptr(rstd))
        rep.check(f"rmsnorm fwd y [{T},{H}]", y, yref, BF16_TOL)
        rep.check(f"rmsnorm fwd rstd [{T},{H}]", rstd, rstd_ref, 1e-5)
        dy = torch.randn(T, H, device="cuda").bfloat16()
        yref.backward(dy.double())
        dx = poison((T, H), torch.bfloat16)
        call("tsl_rmsnorm_bwd", ptr(dy), ptr(x), ptr(w), BF16, ptr(rstd), i64(T), i64(H), ptr(dx))
        rep.check(f"rmsnorm bwd dx [{T},{H}]", dx, xd.grad, BF16_TOL)


def check_add_rmsnorm(rep):
    """tsl_add_rmsnorm_fwd: bit-identical to tsl_add then tsl_rmsnorm_fwd, and near the float64 reference."""
    for T, H in ((1, 4096), (8, 2048), (37, 100)):  # decode rows of the 8B and 1B widths; the scalar path
        a = (torch.randn(T, H, device="cuda") * 3).bfloat16()
        b = torch.randn(T, H, device="cuda").bfloat16()
        w = (1 + 0.1 * torch.randn(H, device="cuda")).bfloat16()
        eps = 1e-5
        total, y = poison((T, H), torch.bfloat16), poison((T, H), torch.bfloat16)
        call("tsl_add_rmsnorm_fwd", ptr(a), ptr(b), ptr(w), BF16, i64(T), i64(H), f32(eps), ptr(total), ptr(y))
        s2, y2, rstd2 = poison((T, H), torch.bfloat16), poison((T, H), torch.bfloat16), poison((T,), torch.float32)
        call("tsl_add", ptr(a), ptr(b), ptr(s2), BF16, u64(T * H))
        call("tsl_rmsnorm_fwd", ptr(s2), ptr(w), BF16, i64(T), i64(H), f32(eps), ptr(y2), ptr(rstd2))
        rep.expect(f"add_rmsnorm [{T},{H}]: sum has the bits of tsl_add", torch.equal(total, s2))
        rep.expect(f"add_rmsnorm [{T},{H}]: y has the bits of tsl_rmsnorm_fwd", torch.equal(y, y2))
        sd = a.double() + b.double()
        rep.check(f"add_rmsnorm [{T},{H}] y vs float64", y, sd * torch.rsqrt((sd ** 2).mean(-1, keepdim=True) + eps) * w.double(), BF16_TOL)


def llama3_inv_freq(D, theta=500000.0, factor=8.0, low=1.0, high=4.0, old_ctx=8192):
    inv = 1.0 / (theta ** (torch.arange(0, D, 2, dtype=torch.float64) / D))
    wavelen = 2 * torch.pi / inv
    low_wl, high_wl = old_ctx / low, old_ctx / high
    smooth = (old_ctx / wavelen - low) / (high - low)
    scaled = torch.where(wavelen > low_wl, inv / factor, inv)
    mid = (wavelen <= low_wl) & (wavelen >= high_wl)
    scaled = torch.where(mid, (1 - smooth) * inv / factor + smooth * inv, scaled)
    return scaled.float().cuda()


def rope_reference(x, pos, inv_freq, heads, D, sign):
    theta = (pos.float()[:, None] * inv_freq[None, :]).double()  # f32 angle, as HF computes it
    c, s = theta.cos()[:, None, :], sign * theta.sin()[:, None, :]
    xv = x.double().view(-1, heads, D)
    a, b = xv[..., : D // 2], xv[..., D // 2:]
    return torch.cat([a * c - b * s, b * c + a * s], -1).view(x.shape)


def check_rope(rep):
    T, heads, D = 1500, 8, 128
    inv = llama3_inv_freq(D)
    pos = torch.randint(0, 8192, (T,), device="cuda", dtype=torch.int32)
    x = torch.randn(T, heads * D, device="cuda").bfloat16()
    for sign, name in ((1, "fwd"), (-1, "bwd (inverse rotation)")):
        y = poison((T, heads * D), torch.bfloat16)
        call("tsl_rope", ptr(x), ptr(pos), ptr(inv), i64(T), heads, D, sign, ptr(y))
        rep.check(f"rope {name}", y, rope_reference(x, pos, inv, heads, D, sign), BF16_TOL)
    y = x.clone()
    call("tsl_rope", ptr(y), ptr(pos), ptr(inv), i64(T), heads, D, 1, ptr(y))
    rep.check("rope in place", y, rope_reference(x, pos, inv, heads, D, 1), BF16_TOL)


def check_swiglu(rep):
    for n in (3 * 1024 * 1024, 100_003):  # 16-byte path; the scalar path
        g = (torch.randn(n, device="cuda") * 2).bfloat16()
        u = (torch.randn(n, device="cuda") * 2).bfloat16()
        gd, ud = g.double().requires_grad_(True), u.double().requires_grad_(True)
        href = torch.nn.functional.silu(gd) * ud
        h = poison((n,), torch.bfloat16)
        call("tsl_swiglu_fwd", ptr(g), ptr(u), u64(n), ptr(h))
        rep.check(f"swiglu fwd n={n}", h, href, BF16_TOL)
        dh = torch.randn(n, device="cuda").bfloat16()
        href.backward(dh.double())
        dg, du = poison((n,), torch.bfloat16), poison((n,), torch.bfloat16)
        call("tsl_swiglu_bwd", ptr(dh), ptr(g), ptr(u), u64(n), ptr(dg), ptr(du))
        rep.check(f"swiglu bwd dgate n={n}", dg, gd.grad, BF16_TOL)
        rep.check(f"swiglu bwd dup n={n}", du, ud.grad, BF16_TOL)


def check_adamw(rep):
    shapes = [(16, 4096), (4096, 16), (7,)]
    params = [torch.randn(s, device="cuda") for s in shapes]
    ref = [p.clone().requires_grad_(True) for p in params]
    ms = [torch.zeros(s, device="cuda") for s in shapes]
    vs = [torch.zeros(s, device="cuda") for s in shapes]
    opt = torch.optim.AdamW(ref, lr=2e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.01)
    start = [p.clone() for p in params]
    for step in range(1, 4):
        grads = [torch.randn(s, device="cuda") for s in shapes]
        for r, g in zip(ref, grads):
            r.grad = g.clone()
        opt.step()
        arr = lambda ts: (ctypes.c_void_p * len(ts))(*[t.data_ptr() for t in ts])  # noqa: E731
        sizes = (ctypes.c_uint64 * len(shapes))(*[p.numel() for p in params])
        call("tsl_adamw", arr(params), arr(grads), arr(ms), arr(vs), sizes, len(shapes), f32(2e-3), f32(0.9),
             f32(0.999), f32(1e-8), f32(0.01), step)
    for i, (p, r, s0) in enumerate(zip(params, ref, start)):
        rep.check(f"adamw 3 steps, update of tensor {i}", p - s0, (r.detach() - s0).double(), 1e-4)


def check_argmax(rep):
    """tsl_argmax_rows against torch.argmax (the first index of the maximum), with planted ties and NaN."""
    for rows, cols, dt, tdt in ((8, 128256, F32, torch.float32), (3, 1000, BF16, torch.bfloat16), (1, 7, F32, torch.float32)):
        x = torch.randn(rows, cols, device="cuda").to(tdt)
        if cols > 10:
            x[0, cols // 3] = x[0, cols - 5] = x[0].max() + 1  # a tie: the lower index wins
            x[1 % rows, 2] = float("nan")  # NaN never wins
        out = torch.full((rows,), -1, device="cuda", dtype=torch.int32)
        call("tsl_argmax_rows", ptr(x), ctypes.c_int32(dt), i64(rows), i64(cols), ptr(out))
        ref = torch.nan_to_num(x.float(), nan=-float("inf")).argmax(dim=1).int()
        rep.expect(f"argmax rows={rows} cols={cols} {'f32' if dt == F32 else 'bf16'}", torch.equal(out, ref), f"{out.tolist()[:4]} vs {ref.tolist()[:4]}")
    nan_row = torch.full((1, 50), float("nan"), device="cuda")
    out = torch.full((1,), -1, device="cuda", dtype=torch.int32)
    call("tsl_argmax_rows", ptr(nan_row), F32, i64(1), i64(50), ptr(out))
    rep.expect("argmax of a row of NaN is 0", out.item() == 0)


def body(rep):
    check_elementwise(rep)
    check_argmax(rep)
    check_nf4(rep)
    check_embedding(rep)
    check_rmsnorm(rep)
    check_add_rmsnorm(rep)
    check_rope(rep)
    check_swiglu(rep)
    check_adamw(rep)


if __name__ == "__main__":
    run("elementwise, nf4, embedding, rmsnorm, add + rmsnorm, rope, swiglu, adamw", body)
