"""Runtime, allocator and error model: categories, peaks, OOM details, errors that name the op,
async copies on the copy stream with events."""
import ctypes

import torch

from common import CATEGORIES, call, lib, run, status_of, u64

TSL_ERR_OOM, TSL_ERR_INVALID = 2, 3


class OomInfo(ctypes.Structure):
    _fields_ = [("asked", ctypes.c_uint64), ("free_bytes", ctypes.c_uint64), ("total_bytes", ctypes.c_uint64),
                ("in_use", ctypes.c_uint64 * 7), ("category", ctypes.c_int32)]


class DeviceInfo(ctypes.Structure):
    _fields_ = [("name", ctypes.c_char * 256), ("major", ctypes.c_int32), ("minor", ctypes.c_int32),
                ("multiprocessors", ctypes.c_int32), ("total_bytes", ctypes.c_uint64), ("free_bytes", ctypes.c_uint64),
                ("runtime_version", ctypes.c_int32), ("driver_version", ctypes.c_int32)]


def stats():
    cur = (ctypes.c_uint64 * 7)()
    peak = (ctypes.c_uint64 * 7)()
    cached = ctypes.c_uint64()
    pdt = ctypes.c_uint64()
    call("tsl_memory_stats", cur, peak, ctypes.byref(cached), ctypes.byref(pdt))
    return list(cur), list(peak), cached.value, pdt.value


def malloc(nbytes, cat):
    p = ctypes.c_void_p()
    call("tsl_malloc", u64(nbytes), ctypes.c_int32(cat), ctypes.byref(p))
    return p


def body(rep):
    L = lib()
    rep.expect("abi version", L.tsl_abi_version() == 1)
    rep.expect("device count >= 1", L.tsl_device_count() >= 1)
    call("tsl_init", ctypes.c_int32(0))
    info = DeviceInfo()
    call("tsl_get_device_info", ctypes.byref(info))
    print(f"  device: {info.name.decode()} sm_{info.major}{info.minor}, {info.multiprocessors} SMs, "
          f"{info.total_bytes / 2**30:.1f} GiB, runtime {info.runtime_version}, driver {info.driver_version}")

    call("tsl_reset_peak")
    cur0, _, _, _ = stats()
    a = malloc(3 << 20, CATEGORIES.index("activations"))
    w = malloc(1000, CATEGORIES.index("base_weights"))
    cur1, peak1, _, _ = stats()
    act = CATEGORIES.index("activations")
    rep.expect("activations current grows by the rounded size", cur1[act] - cur0[act] == 4 << 20, f"{cur1[act] - cur0[act]}")
    rep.expect("base_weights counts a small block", cur1[0] - cur0[0] == 1024, f"{cur1[0] - cur0[0]}")
    call("tsl_free", a)
    cur2, peak2, cached2, _ = stats()
    rep.expect("free returns current to before", cur2[act] == cur0[act])
    rep.expect("peak keeps the high-water mark", peak2[act] >= cur0[act] + (4 << 20))
    rep.expect("freed block is cached, not returned", cached2 >= 4 << 20)
    a2 = malloc(3 << 20, act)
    rep.expect("cached block is reused", a2.value == a.value)
    call("tsl_free", a2)
    call("tsl_free", w)

    # Out of memory: a distinct status, the op named, and the numbers a user needs.
    p = ctypes.c_void_p()
    st, msg = status_of("tsl_malloc", u64(1 << 50), ctypes.c_int32(act), ctypes.byref(p))
    rep.expect("OOM status is distinct", st == TSL_ERR_OOM, f"status {st}: {msg}")
    rep.expect("OOM message names the op", "tsl_malloc" in msg and "asked" in msg, msg)
    oom = OomInfo()
    L.tsl_last_oom(ctypes.byref(oom))
    rep.expect("OOM info: asked/free/total", oom.asked >= 1 << 50 and 0 < oom.free_bytes <= oom.total_bytes,
               f"asked={oom.asked} free={oom.free_bytes} total={oom.total_bytes}")
    rep.expect("OOM info: category", oom.category == act)
    # The process keeps working after an OOM.
    b = malloc(1 << 20, act)
    call("tsl_free", b)

    st, msg = status_of("tsl_rope", None, None, None, ctypes.c_int64(4), ctypes.c_int32(2), ctypes.c_int32(7),
                        ctypes.c_int32(1), None)
    rep.expect("invalid argument names the op", st == TSL_ERR_INVALID and msg.startswith("tsl_rope:"), msg)
    st, msg = status_of("tsl_free", ctypes.c_void_p(0x1234))
    rep.expect("double/foreign free is an error, not a crash", st == TSL_ERR_INVALID, msg)

    # Async round trip device -> pinned host -> device on the copy stream.
    n = 1 << 22
    src = torch.randn(n, device="cuda")
    h = ctypes.c_void_p()
    call("tsl_host_alloc", u64(n * 4), ctypes.byref(h))
    cur, _, _, _ = stats()
    rep.expect("pinned host counted as offload_host", cur[CATEGORIES.index("offload_host")] >= n * 4)
    ev = ctypes.c_uint64()
    call("tsl_copy_d2h_async", h, ctypes.c_void_p(src.data_ptr()), u64(n * 4), ctypes.byref(ev))
    call("tsl_event_sync", ev)
    call("tsl_event_destroy", ev)
    host_view = (ctypes.c_float * n).from_address(h.value)
    back = torch.frombuffer(host_view, dtype=torch.float32)
    rep.expect("d2h async copy is exact", torch.equal(back, src.cpu()))
    dst = torch.full((n,), float("nan"), device="cuda")
    call("tsl_copy_h2d_async", ctypes.c_void_p(dst.data_ptr()), h, u64(n * 4), ctypes.byref(ev))
    call("tsl_event_wait", ev)
    done = ctypes.c_int32()
    call("tsl_event_sync", ev)
    call("tsl_event_query", ev, ctypes.byref(done))
    rep.expect("event reports done", done.value == 1)
    call("tsl_event_destroy", ev)
    rep.expect("h2d async copy is exact", torch.equal(dst, src))
    call("tsl_host_free", h)
    graphs(rep)
    device_profile(rep)
    call("tsl_empty_cache")
    cur, _, cached, _ = stats()
    rep.expect("empty_cache releases cached blocks", cached == 0, f"cached={cached}")


def graphs(rep):
    """Step graphs: captured calls do not run until launched, replays read inputs rewritten in place,
    blocks the capture allocated stay reserved (and shown as workspace) until the graph is destroyed,
    and a failed capture leaves the library working."""
    n = 1 << 20
    x, y = torch.randn(n, device="cuda"), torch.randn(n, device="cuda")
    out = torch.full((n,), float("nan"), device="cuda")
    ws = CATEGORIES.index("workspace")
    torch.cuda.synchronize()
    cur0, _, _, _ = stats()
    # Inside a capture nothing may wait for the stream, so calls are checked by status only.
    def raw(name, *args):
        st, msg = status_of(name, *args)
        if st != 0:
            raise RuntimeError(f"{name} returned {st} during capture: {msg}")

    raw("tsl_graph_capture_begin")
    st, msg = status_of("tsl_graph_capture_begin")
    rep.expect("a second capture is refused", st == TSL_ERR_INVALID and "already" in msg, msg)
    tmp = ctypes.c_void_p()
    raw("tsl_malloc", u64(n * 4), ctypes.c_int32(CATEGORIES.index("activations")), ctypes.byref(tmp))
    F32 = ctypes.c_int32(0)
    raw("tsl_add", ctypes.c_void_p(x.data_ptr()), ctypes.c_void_p(y.data_ptr()), tmp, F32, u64(n))
    raw("tsl_add", tmp, ctypes.c_void_p(x.data_ptr()), ctypes.c_void_p(out.data_ptr()), F32, u64(n))
    raw("tsl_free", tmp)
    g = ctypes.c_uint64()
    raw("tsl_graph_capture_end", ctypes.byref(g))
    call("tsl_synchronize")
    rep.expect("capture records without running", bool(torch.isnan(out).all()))
    cur1, _, _, _ = stats()
    rep.expect("the graph's scratch is shown as workspace", cur1[ws] - cur0[ws] >= n * 4, f"{cur1[ws] - cur0[ws]}")
    other = malloc(n * 4, CATEGORIES.index("activations"))
    rep.expect("eager allocations do not get the graph's blocks", other.value != tmp.value)
    call("tsl_free", other)
    for round_ in range(2):
        x.copy_(torch.randn(n, device="cuda"))
        torch.cuda.synchronize()
        call("tsl_graph_launch", g)
        call("tsl_synchronize")
        rep.expect(f"replay {round_ + 1} reads the rewritten input", torch.allclose(out, 2 * x + y, rtol=1e-6, atol=1e-6))
    call("tsl_graph_destroy", g)
    cur2, _, _, _ = stats()
    rep.expect("destroying the graph releases its reserve", cur2[ws] == cur0[ws], f"{cur2[ws]} vs {cur0[ws]}")
    # A capture that hits a call capture does not allow (a synchronous upload) is aborted cleanly.
    raw("tsl_graph_capture_begin")
    host = torch.zeros(16)
    st, msg = status_of("tsl_upload", ctypes.c_void_p(out.data_ptr()), ctypes.c_void_p(host.data_ptr()), u64(64))
    rep.expect("a synchronous call fails during capture", st != 0, msg)
    raw("tsl_graph_capture_abort")
    call("tsl_add", ctypes.c_void_p(x.data_ptr()), ctypes.c_void_p(y.data_ptr()), ctypes.c_void_p(out.data_ptr()), F32, u64(n))
    call("tsl_synchronize")
    rep.expect("work runs as usual after an aborted capture", torch.allclose(out, x + y))
    cur3, _, _, _ = stats()
    rep.expect("an aborted capture keeps nothing reserved", cur3[ws] == cur0[ws], f"{cur3[ws]} vs {cur0[ws]}")


def device_profile(rep):
    """The device-time profile: marks charge the time since the previous mark to their label (GEMMs
    mark themselves by shape), nothing is recorded while off, and reset zeroes the totals."""
    from common import BF16, f32, i64, ptr

    def entries():
        count = ctypes.c_int32()
        call("tsl_profile_collect", ctypes.byref(count))
        out, label, calls, ms = {}, ctypes.create_string_buffer(256), ctypes.c_int64(), ctypes.c_double()
        for i in range(count.value):
            call("tsl_profile_entry", i, label, 256, ctypes.byref(calls), ctypes.byref(ms))
            out[label.value.decode()] = (calls.value, ms.value)
        return out

    a = torch.randn(2048, 2048, device="cuda").bfloat16()
    c = torch.empty(2048, 2048, device="cuda").bfloat16()
    gemm = lambda: call("tsl_gemm", 0, 1, i64(2048), i64(2048), i64(2048), f32(1), ptr(a), ptr(a), BF16, f32(0), ptr(c), BF16, None)
    gemm()  # plans the shape while the profile is off: nothing recorded
    call("tsl_profile_enable", 1)
    call("tsl_profile_reset")
    call("tsl_profile_mark", b"start")
    for _ in range(5):
        gemm()
    call("tsl_profile_mark", b"after gemms")
    got = entries()
    g = got.get("gemm 2048x2048x2048")
    rep.expect("profile: each GEMM is charged to its shape", g is not None and g[0] == 5 and g[1] > 0, repr(got))
    rep.expect("profile: a mark right after them gets next to nothing", "after gemms" in got and got["after gemms"][1] < (g or (0, 1))[1], repr(got))
    call("tsl_profile_reset")
    rep.expect("profile: reset zeroes the totals", entries() == {}, repr(entries()))
    call("tsl_profile_enable", 0)
    gemm()
    rep.expect("profile: nothing is recorded while off", entries() == {})
    st, msg = status_of("tsl_profile_entry", 0, ctypes.create_string_buffer(8), 8, ctypes.byref(ctypes.c_int64()), ctypes.byref(ctypes.c_double()))
    rep.expect("profile: reading past the entries is refused", st != 0 and "entry" in msg, msg)


if __name__ == "__main__":
    run("runtime, allocator, errors, async copies", body)
