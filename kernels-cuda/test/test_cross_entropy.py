"""Cross-entropy fused with the LM head, chunked: loss sum, lse and dh against PyTorch in float64,
with ignored labels (-100) and a chunk size that does not divide T; the one-pass training form
(tsl_ce_lmhead_fused) against both."""
import torch

from common import BF16_TOL, call, f32, i64, poison, ptr, run


def case(rep, T, H, V, chunk):
    h = torch.randn(T, H, device="cuda").bfloat16()
    head = (torch.randn(V, H, device="cuda") / H ** 0.5 * 4).bfloat16()
    labels = torch.randint(0, V, (T,), device="cuda", dtype=torch.int32)
    labels[torch.rand(T, device="cuda") < 0.3] = -100
    hd = h.double().requires_grad_(True)
    logits = hd @ head.double().t()
    loss_ref = torch.nn.functional.cross_entropy(logits, labels.long(), ignore_index=-100, reduction="sum")
    lse_ref = torch.logsumexp(logits.detach(), -1)
    loss = poison((1,), torch.float32)
    lse = poison((T,), torch.float32)
    call("tsl_ce_lmhead_fwd", ptr(h), ptr(head), ptr(labels), i64(T), i64(H), i64(V), i64(chunk), ptr(loss), ptr(lse))
    name = f"T={T} H={H} V={V} chunk={chunk}"
    rep.check(f"ce fwd loss sum {name}", loss, loss_ref.detach().reshape(1), 1e-4)
    keep = labels != -100
    rep.check(f"ce fwd lse {name}", lse[keep], lse_ref[keep], 1e-5)
    rep.expect(f"ce fwd lse is 0 for ignored tokens {name}", bool((lse[~keep] == 0).all()))
    count = int((labels != -100).sum())
    (loss_ref / count).backward()
    dh = poison((T, H), torch.bfloat16)
    call("tsl_ce_lmhead_bwd", ptr(h), ptr(head), ptr(labels), ptr(lse), i64(T), i64(H), i64(V), i64(chunk),
         f32(1.0 / count), ptr(dh))
    rep.check(f"ce bwd dh (mean) {name}", dh, hd.grad, BF16_TOL)
    # Loss and gradient in one pass: the same kernels on the same logits, so dh has the same bits
    # (the loss sum's atomic adds may land in another order).
    loss2, dh2 = poison((1,), torch.float32), poison((T, H), torch.bfloat16)
    call("tsl_ce_lmhead_fused", ptr(h), ptr(head), ptr(labels), i64(T), i64(H), i64(V), i64(chunk), f32(1.0 / count),
         ptr(loss2), ptr(dh2))
    rep.check(f"ce fused loss sum {name}", loss2, loss_ref.detach().reshape(1), 1e-4)
    rep.check(f"ce fused dh (mean) {name}", dh2, hd.grad, BF16_TOL)
    rep.expect(f"ce fused dh equals fwd + bwd bit for bit {name}", bool(torch.equal(dh2, dh)))
    rep.check(f"ce fused loss equals fwd's {name}", loss2, loss, 1e-6)


def body(rep):
    case(rep, 1000, 512, 32000, 256)
    case(rep, 77, 64, 1000, 1000)
    case(rep, 300, 2048, 128256, 128)


if __name__ == "__main__":
    run("cross-entropy fused with the LM head", body)
