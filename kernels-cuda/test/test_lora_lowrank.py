"""The LoRA update kernel (tsl_lora_up_acc: y += s · u · fᵀ at rank <= 16) against float64 references on
fresh random inputs: ranks 1..16 (odd ones too), row counts that are not multiples of the 16-row tile,
output widths that are not multiples of the 64-column warp tile (odd ones: the element-wise path),
u row-major with a stride (a slice of a wider [T, Σr] matrix) and u transposed ([Σr, T], as grouped
linears keep x·aᵀ), and invalid arguments."""
import torch

from common import BF16_TOL, call, f32, i64, lib, ptr, run, status_of


def up_case(rep, T, N, r, ld, scale, transposed):
    if transposed:
        u_store = torch.randn(ld, T, device="cuda").bfloat16()  # [Σr, T]: rows 0..r-1 are this adapter's
        u = u_store[:r].t()
        ldu = T
    else:
        u_store = torch.randn(T, ld, device="cuda").bfloat16()
        u = u_store[:, :r]
        ldu = ld
    f = (torch.randn(N, r, device="cuda") * 0.5).bfloat16()
    y0 = torch.randn(T, N, device="cuda").bfloat16()
    y = y0.clone()
    call("tsl_lora_up_acc", ptr(y), i64(T), i64(N), ptr(u_store), i64(ldu), int(transposed), ptr(f), r, f32(scale))
    ref = y0.double() + scale * (u.double() @ f.double().t())
    tag = f"T={T} N={N} r={r} {'u transposed' if transposed else f'ldu={ldu}'}"
    rep.check(f"lora_up_acc {tag}", y, ref, BF16_TOL)
    # The update alone, so a kernel that skipped it could not pass on y0's size.
    rep.check(f"lora_up_acc {tag}: the update", y.double() - y0.double(), ref - y0.double(), 5e-2)


def body(rep):
    lib()
    for T, N, r, ld, scale, tr in [(8192, 14336, 16, 16, 2.0, False), (300, 4096, 16, 48, 0.5, False),
                                   (37, 100, 8, 8, 1.0, False), (17, 63, 3, 3, 1.5, False), (1, 1, 1, 1, 1.0, False),
                                   (1000, 1024, 13, 32, 0.25, False), (2048, 4096, 16, 48, 2.0, True),
                                   (77, 200, 5, 16, 1.0, True), (300, 96, 16, 16, 0.5, True)]:
        up_case(rep, T, N, r, ld, scale, tr)
    x = torch.randn(16, 40, device="cuda").bfloat16()
    st, msg = status_of("tsl_lora_up_acc", ptr(x), i64(16), i64(40), ptr(x), i64(40), 0, ptr(x), 17, f32(1))
    rep.expect("lora_up_acc refuses r above 16", st != 0 and "r <= 16" in msg, msg)
    st, msg = status_of("tsl_lora_up_acc", ptr(x), i64(16), i64(40), ptr(x), i64(8), 1, ptr(x), 4, f32(1))
    rep.expect("lora_up_acc refuses a transposed u shorter than T", st != 0 and "ldu" in msg, msg)


if __name__ == "__main__":
    run("LoRA update kernel", body)
