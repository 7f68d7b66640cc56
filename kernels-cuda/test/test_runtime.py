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
    call("tsl_empty_cache")
    cur, _, cached, _ = stats()
    rep.expect("empty_cache releases cached blocks", cached == 0, f"cached={cached}")


if __name__ == "__main__":
    run("runtime, allocator, errors, async copies", body)
