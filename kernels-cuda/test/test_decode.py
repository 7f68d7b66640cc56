"""Generation kernels against PyTorch (float64 references) on fresh random inputs: the batch-1 NF4
matrix-vector product (plain, double-quantized absmax, bias, LoRA; one matrix and groups of 2-3
matrices sharing x in one launch), KV cache writes into segments,
and attention over a paged / segmented cache (decode, prefill over the cache, a long context that
takes the split-and-merge path)."""
import ctypes

import torch

from common import BF16, F32, call, f32, i64, poison, ptr, run, status_of
from test_ops import NF4_CODE, nf4_quantize

BS = 16


def u64_array(xs):
    return (ctypes.c_uint64 * len(xs))(*[int(x) for x in xs])


def i32_array(xs):
    return (ctypes.c_int32 * len(xs))(*[int(x) for x in xs])


def gemv_operand(out_f, in_f, dq, bias, r, bs, x):
    """A random NF4 matrix with its optional bias and LoRA, and the float64 reference of its product with x."""
    code = torch.tensor(NF4_CODE, dtype=torch.float64, device="cuda")
    w = torch.randn(out_f, in_f, device="cuda") * 0.02
    qs = nf4_quantize(w, blocksize=bs)
    am = (qs["absmax_dq"] if dq else qs["absmax"]).double()
    wd = (code[qs["idx"].long()] * am.repeat_interleave(bs)[: out_f * in_f]).view(out_f, in_f)
    ref = wd @ x.double()
    b = torch.randn(out_f, device="cuda") if bias else None
    if bias:
        ref = ref + b.double()
    a = lb = None
    if r:
        a = torch.randn(r, in_f, device="cuda") * 0.05
        lb = torch.randn(out_f, r, device="cuda") * 0.05
        ref = ref + 0.5 * (lb.double() @ (a.double() @ x.double()))
    return dict(qs=qs, dq=dq, bias=b, a=a, b=lb, r=r, scale=0.5, ref=ref, y=poison((out_f,), torch.bfloat16))


def check_gemv_group(rep):
    """tsl_nf4_gemv_group: 2-3 matrices sharing x in one launch, each against its own reference."""
    sms = torch.cuda.get_device_properties(0).multi_processor_count
    # (out_f per matrix, in_f, double-quantized, bias per matrix, LoRA rank per matrix, blocksize):
    # q/k/v-like (1 row per warp), gate/up-like (at least 16 x SMs rows: 2 rows per warp, past one
    # wave of the capped grid; the first matrix's odd row count puts one warp's two rows in both
    # matrices), f32 absmax and blocksize 32 (4 words per lane), bias and LoRA on some matrices only.
    for outs, in_f, dq, biases, ranks, bs in [((8 * sms + 1, 2 * sms + 3, 2 * sms + 3), 1088, True, (False, True, False), (0, 4, 0), 64),
                                              ((60 * sms + 7, 60 * sms + 7), 4160, True, (False, False), (8, 8), 256),
                                              ((33, 17, 40), 192, False, (True, True, False), (0, 0, 2), 32),
                                              ((3 * sms, 5), 4096, False, (False, True), (16, 0), 128),
                                              # q/k/v of an 8B layer per SM count (46 rows per SM): 2 rows per warp
                                              # would fill the last round of blocks poorly, so 1 row per warp runs
                                              # over several rounds of blocks; odd matrix ends, blocksizes 64 and 32.
                                              ((30 * sms + 1, 8 * sms, 8 * sms - 1), 4096, True, (True, False, False), (0, 8, 0), 64),
                                              ((30 * sms + 1, 8 * sms, 8 * sms - 1), 2048, False, (False, False, True), (0, 0, 0), 32)]:
        x = torch.randn(in_f, device="cuda").bfloat16()
        ops = [gemv_operand(o, in_f, dq, bi, r, bs, x) for o, bi, r in zip(outs, biases, ranks)]
        n = len(ops)
        dp = lambda t: 0 if t is None else t.data_ptr()  # noqa: E731
        u64s = lambda f: u64_array([dp(f(o)) for o in ops])  # noqa: E731
        call("tsl_nf4_gemv_group", ctypes.c_int32(n), u64s(lambda o: o["qs"]["packed"]), (ctypes.c_int64 * n)(*outs), i64(in_f),
             ctypes.c_int32(bs), u64s(lambda o: None if dq else o["qs"]["absmax"]), u64s(lambda o: o["qs"]["q"] if dq else None),
             u64s(lambda o: o["qs"]["nested_absmax"] if dq else None), u64s(lambda o: o["qs"]["code8"] if dq else None),
             i32_array([256] * n), (ctypes.c_float * n)(*[float(o["qs"]["offset"]) for o in ops]), ptr(x),
             u64s(lambda o: o["bias"]), ctypes.c_int32(F32), u64s(lambda o: o["a"]), u64s(lambda o: o["b"]),
             (ctypes.c_float * n)(*[o["scale"] for o in ops]), i32_array([o["r"] for o in ops]), u64s(lambda o: o["y"]))
        for i, o in enumerate(ops):
            rep.check(f"nf4_gemv_group {outs}x{in_f} matrix {i} dq={dq} bias={biases[i]} lora_r={ranks[i]} bs={bs}",
                      o["y"], o["ref"], 8e-3)
    # A group mixing double-quantized and f32 absmax is refused with a clear message.
    x = torch.randn(192, device="cuda").bfloat16()
    ops = [gemv_operand(4, 192, True, False, 0, 64, x), gemv_operand(4, 192, False, False, 0, 64, x)]
    dp = lambda t: 0 if t is None else t.data_ptr()  # noqa: E731
    status, msg = status_of("tsl_nf4_gemv_group", ctypes.c_int32(2), u64_array([dp(o["qs"]["packed"]) for o in ops]),
                            (ctypes.c_int64 * 2)(4, 4), i64(192), ctypes.c_int32(64), u64_array([0, dp(ops[1]["qs"]["absmax"])]),
                            u64_array([dp(ops[0]["qs"]["q"]), 0]), u64_array([dp(ops[0]["qs"]["nested_absmax"]), 0]),
                            u64_array([dp(ops[0]["qs"]["code8"]), 0]), i32_array([256, 256]), (ctypes.c_float * 2)(0, 0), ptr(x),
                            None, ctypes.c_int32(F32), None, None, None, None, u64_array([dp(o["y"]) for o in ops]))
    rep.expect("nf4_gemv_group refuses mixed absmax kinds", status != 0 and "double-quantized" in msg, msg)


def check_gemv(rep):
    check_gemv_group(rep)
    code = torch.tensor(NF4_CODE, dtype=torch.float64, device="cuda")
    sms = torch.cuda.get_device_properties(0).multi_processor_count
    # (out_f, in_f, double-quantized, bias, LoRA rank, blocksize): rows shorter than a warp's 32 code
    # words, row counts that leave a block of 8 warps partly empty, and blocksizes 32 / 128 / 256,
    # where an absmax block straddles two rows (in_f = 192) or a warp's iteration spans 32 blocks.
    # A warp takes 2 rows when out_f / 2 >= 8 warps x SMs (up to 150 SMs for the
    # rows below): 4096, 4097 (odd: the last warp's second row is missing; f32 absmax, bias, LoRA, a
    # partial iteration) and 2400 (blocksize 32: 4 words per lane) take that path, the others 1 row
    # per warp. The grid is capped at the blocks resident at once (at most 3 of 8 warps per SM: the
    # 64 KB table), and blocks stride over groups of 8 warps x rows: 100 x SMs + 13 rows (2 rows per
    # warp) is more than twice what the capped grid covers in one pass, so every block takes several
    # groups and the last group is partial with an odd row; the small row counts take one group each.
    # Also 22 x SMs + 5 rows of in_f 16384 (8 iterations of 32 x 8 words per row, about one group
    # per block) and 100 x SMs + 13 rows of in_f 4160 (a last iteration of 8 words after 2 full ones).
    big = 100 * sms + 13
    for out_f, in_f, dq, bias, r, bs in [(4096, 4096, True, False, 0, 64), (1000, 14336, False, True, 0, 64),
                                         (77, 128, True, True, 16, 64), (2048, 8192, True, False, 8, 64),
                                         (15, 192, True, False, 0, 64), (33, 192, False, False, 0, 128),
                                         (40, 1088, True, False, 0, 32), (19, 4160, True, True, 0, 256),
                                         (4097, 256, False, True, 4, 128), (2400, 1088, True, False, 0, 32),
                                         (22 * sms + 5, 16384, True, True, 4, 64),
                                         (big, 4160, False, True, 8, 256), (big, 192, True, False, 0, 32)]:
        w = torch.randn(out_f, in_f, device="cuda") * 0.02
        qs = nf4_quantize(w, blocksize=bs)
        am = (qs["absmax_dq"] if dq else qs["absmax"]).double()
        wd = (code[qs["idx"].long()] * am.repeat_interleave(bs)[: out_f * in_f]).view(out_f, in_f)
        x = torch.randn(in_f, device="cuda").bfloat16()
        ref = wd @ x.double()
        b = torch.randn(out_f, device="cuda") if bias else None
        if bias:
            ref = ref + b.double()
        a = lb = None
        scale = 0.5
        if r:
            a = torch.randn(r, in_f, device="cuda") * 0.05
            lb = torch.randn(out_f, r, device="cuda") * 0.05
            ref = ref + scale * (lb.double() @ (a.double() @ x.double()))
        y = poison((out_f,), torch.bfloat16)
        call("tsl_nf4_gemv", ptr(qs["packed"]), i64(out_f), i64(in_f), ctypes.c_int32(bs),
             ptr(None if dq else qs["absmax"]), ptr(qs["q"] if dq else None), ptr(qs["nested_absmax"] if dq else None),
             ptr(qs["code8"] if dq else None), ctypes.c_int32(256), f32(qs["offset"]), ptr(x), ptr(b), ctypes.c_int32(F32),
             ptr(a), ptr(lb), f32(scale), ctypes.c_int32(r), ptr(y))
        rep.check(f"nf4_gemv {out_f}x{in_f} dq={dq} bias={bias} lora_r={r} bs={bs}", y, ref, 8e-3)
    # Block sizes must be powers of two (the kernel indexes blocks by shifts): 96 is refused clearly.
    qs = nf4_quantize(torch.randn(4, 192, device="cuda"), blocksize=64)
    x = torch.randn(192, device="cuda").bfloat16()
    y = poison((4,), torch.bfloat16)
    status, msg = status_of("tsl_nf4_gemv", ptr(qs["packed"]), i64(4), i64(192), ctypes.c_int32(96), ptr(qs["absmax"]),
                            ptr(None), ptr(None), ptr(None), ctypes.c_int32(256), f32(0), ptr(x), ptr(None),
                            ctypes.c_int32(F32), ptr(None), ptr(None), f32(0), ctypes.c_int32(0), ptr(y))
    rep.expect("nf4_gemv refuses blocksize 96", status != 0 and "power of two" in msg, msg)


def make_cache(lens, kw, seg_rows, seed):
    """Segments of bf16 rows and a random block table per sequence over their blocks."""
    g = torch.Generator().manual_seed(seed)
    segs_k = [torch.zeros(r, kw, device="cuda", dtype=torch.bfloat16) for r in seg_rows]
    segs_v = [torch.zeros(r, kw, device="cuda", dtype=torch.bfloat16) for r in seg_rows]
    total = sum(seg_rows) // BS
    need = [(l + BS - 1) // BS for l in lens]
    assert sum(need) <= total
    perm = torch.randperm(total, generator=g).tolist()
    tables, at = [], 0
    for n in need:
        tables.append(perm[at:at + n])
        at += n
    return segs_k, segs_v, tables


def check_attention(rep):
    for (lens, nq, Hq, Hkv, D, seg_rows) in [
        ([1, 40, 300], [1, 1, 1], 32, 8, 128, [640]),             # decode over a paged pool
        ([3000], [1], 32, 8, 128, [1024, 1024, 1024]),            # long context: split + merge, contiguous chunks
        ([23, 70], [23, 9], 8, 2, 64, [64, 128]),                  # prefill over the cache, two segments
        ([50], [1], 4, 2, 16, [64]),                               # tiny head dim (tsloth-tiny)
    ]:
        kw = Hkv * D
        segs_k, segs_v, tables = make_cache(lens, kw, seg_rows, 7)
        T = sum(nq)
        kv = [torch.randn(l, kw, device="cuda") for l in lens]
        vv = [torch.randn(l, kw, device="cuda") for l in lens]
        slots = []
        for b, l in enumerate(lens):
            slots += [tables[b][p // BS] * BS + p % BS for p in range(l)]
        kcat, vcat = torch.cat(kv), torch.cat(vv)
        slots_t = torch.tensor(slots, dtype=torch.int32, device="cuda")
        seg_blocks = [r // BS for r in seg_rows]
        kp, vp = u64_array([t.data_ptr() for t in segs_k]), u64_array([t.data_ptr() for t in segs_v])
        call("tsl_kv_cache_write", kp, vp, i32_array(seg_blocks), ctypes.c_int32(len(seg_rows)), ctypes.c_int32(BS),
             ptr(kcat), ptr(vcat), ctypes.c_int32(F32), ptr(slots_t), i64(kcat.shape[0]), ctypes.c_int32(kw))
        # The write: gather the slots back from the segments.
        flat_k = torch.cat(segs_k)
        rep.check(f"kv_cache_write {lens} segments={len(seg_rows)}", flat_k[slots_t.long()], kcat.bfloat16().double(), 1e-6)
        q = torch.randn(T, Hq * D, device="cuda").bfloat16()
        maxb = max(len(t) for t in tables)
        tab = torch.tensor([t + [0] * (maxb - len(t)) for t in tables], dtype=torch.int32, device="cuda")
        cu = torch.tensor([0] + torch.tensor(nq).cumsum(0).tolist(), dtype=torch.int32, device="cuda")
        ctx = torch.tensor(lens, dtype=torch.int32, device="cuda")
        o = poison((T, Hq * D), torch.bfloat16)
        scale = D ** -0.5
        call("tsl_paged_attention", ptr(q), kp, vp, i32_array(seg_blocks), ctypes.c_int32(len(seg_rows)), ctypes.c_int32(BS),
             ptr(tab), ctypes.c_int32(maxb), ptr(cu), ptr(ctx), ctypes.c_int32(len(lens)), i64(T), ctypes.c_int32(max(lens)),
             ctypes.c_int32(Hq), ctypes.c_int32(Hkv), ctypes.c_int32(D), f32(scale), ptr(o))
        ref = torch.empty(T, Hq * D, dtype=torch.float64, device="cuda")
        G = Hq // Hkv
        row = 0
        for b, l in enumerate(lens):
            k = kv[b].bfloat16().double().view(l, Hkv, D).repeat_interleave(G, 1)
            v = vv[b].bfloat16().double().view(l, Hkv, D).repeat_interleave(G, 1)
            for i in range(nq[b]):
                pos = l - nq[b] + i
                qi = q[row].double().view(Hq, D)
                s = torch.einsum("hd,phd->hp", qi, k[: pos + 1]) * scale
                ref[row] = torch.einsum("hp,phd->hd", s.softmax(-1), v[: pos + 1]).reshape(-1)
                row += 1
        rep.check(f"paged_attention lens={lens} q={nq} H={Hq}/{Hkv} D={D} segs={len(seg_rows)}", o, ref, 1.2e-2)


def body(rep):
    check_gemv(rep)
    check_attention(rep)


if __name__ == "__main__":
    run("decode: nf4 gemv, kv cache write, paged attention", body)
