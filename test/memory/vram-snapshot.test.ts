import assert from "node:assert/strict";
import { describe, it } from "node:test";
import type { GpuInfo } from "../../lib/env/gpu-info.js";
import { MemoryHistory, sharedMemoryHistory } from "../../lib/memory/memory-history.js";
import { vramBundle } from "../../lib/memory/vram-view.js";
import { vramSnapshot } from "../../lib/memory/vram-snapshot.js";
import { PLOTLY_MIME } from "../../lib/plots/mime-bundle.js";

const MiB = 1024 ** 2;
const host = { totalBytes: 64 * 1024 * MiB, availableBytes: 40 * 1024 * MiB, processRssBytes: 900 * MiB };
const noGpu: GpuInfo = { available: false, reason: "no NVML" };

function rand(lo: number, hi: number) {
  return Math.round(lo + Math.random() * (hi - lo));
}

function engineReport() {
  const current = { base_weights: rand(100, 200) * MiB, adapters: rand(1, 9) * MiB, optimizer: rand(2, 18) * MiB, activations: rand(10, 90) * MiB, offload_host: rand(10, 50) * MiB, kv_cache: 0, workspace: rand(1, 5) * MiB };
  const peak = Object.fromEntries(Object.entries(current).map(([k, v]) => [k, v + rand(0, 30) * MiB]));
  return { current, peak, peakDeviceTotal: 0 };
}

function nvmlGpu(used: number, processes: { pid: number; usedBytes: number }[] | undefined, ownPid: number): GpuInfo {
  const own = processes?.find((p) => p.pid === ownPid);
  return {
    available: true, driverVersion: "550.54.15", cudaDriverVersion: "12.4",
    devices: [{ index: 0, name: "NVIDIA H100 80GB HBM3", totalBytes: 80 * 1024 * MiB, usedBytes: used, freeBytes: 80 * 1024 * MiB - used, computeCapability: [9, 0], processes, ownProcessBytes: own?.usedBytes }],
  };
}

describe("vramSnapshot", () => {
  it("on a machine without a GPU shows the CPU backend's accounting and says so", () => {
    const report = engineReport();
    const s = vramSnapshot({ engine: report, backend: "cpu", gpu: noGpu, host });
    assert.equal(s.source, "none");
    assert.equal(s.device, undefined);
    assert.match(s.note, /No GPU visible: showing the cpu backend's accounting/);
    const deviceSum = Object.entries(report.current).reduce((a, [c, v]) => a + (c === "offload_host" ? 0 : v), 0);
    assert.equal(s.engineDeviceBytes, deviceSum, "offloaded host copies are not device memory");
    assert.deepEqual(s.categories.activations, { current: report.current.activations, peak: report.peak.activations });
    assert.equal(s.categories.other_processes, undefined);
  });

  it("counts other processes from NVML's per-process list", () => {
    const pid = 1000 + rand(0, 1000);
    const others = [rand(100, 900) * MiB, rand(100, 900) * MiB];
    const gpu = nvmlGpu(5000 * MiB, [{ pid, usedBytes: 1200 * MiB }, { pid: pid + 1, usedBytes: others[0] }, { pid: pid + 2, usedBytes: others[1] }], pid);
    const s = vramSnapshot({ engine: engineReport(), gpu, pid, host });
    assert.equal(s.source, "nvml");
    assert.equal(s.otherProcessesMethod, "per-process");
    assert.equal(s.categories.other_processes.current, others[0] + others[1]);
    assert.equal(s.device!.usedBytes, 5000 * MiB);
  });

  it("falls back to device used minus this process when NVML has no per-process numbers", () => {
    const report = engineReport();
    const s = vramSnapshot({ engine: report, gpu: nvmlGpu(3000 * MiB, undefined, 1), pid: 1, host });
    assert.equal(s.otherProcessesMethod, "remainder");
    assert.equal(s.categories.other_processes.current, 3000 * MiB - s.engineDeviceBytes);
  });

  it("uses the CUDA runtime reader when NVML is absent", () => {
    const total = 24 * 1024 * MiB;
    const free = total - rand(2000, 4000) * MiB;
    const s = vramSnapshot({ engine: new Map([["base_weights", { current: 700 * MiB, peak: 700 * MiB }]]), gpu: noGpu, cudaMemInfo: () => ({ freeBytes: free, totalBytes: total }), host });
    assert.equal(s.source, "cuda-runtime");
    assert.equal(s.device!.usedBytes, total - free);
    assert.equal(s.categories.other_processes.current, total - free - 700 * MiB);
    assert.match(s.note, /cudaMemGetInfo/);
  });

  it("refuses a breakdown with negative or missing bytes, saying what to pass", () => {
    assert.throws(() => vramSnapshot({ engine: { activations: -5 }, gpu: noGpu, host }), /"activations" reports -5 bytes.*memory\(\) report/);
  });
});

describe("MemoryHistory", () => {
  it("records seconds since the first snapshot and each category's current bytes", () => {
    const h = new MemoryHistory();
    const t0 = 1_700_000_000_000;
    const r1 = engineReport();
    h.record(vramSnapshot({ engine: r1, gpu: noGpu, host, now: t0 }));
    h.record(vramSnapshot({ engine: engineReport(), gpu: noGpu, host, now: t0 + 2500 }));
    const s = h.samples();
    assert.deepEqual(s.map((x) => x.t), [0, 2.5]);
    assert.equal(s[0].bytes.activations, r1.current.activations);
  });

  it("keeps the whole run when full: thins to half resolution, keeping start, end and the peak", () => {
    const h = new MemoryHistory(16);
    const peakAt = rand(3, 40);
    for (let i = 0; i < 50; i++) {
      const act = i === peakAt ? 5000 * MiB : rand(10, 100) * MiB;
      h.record(vramSnapshot({ engine: { base_weights: 100 * MiB, activations: act }, gpu: noGpu, host, now: i * 1000 }));
    }
    const s = h.samples();
    assert.ok(s.length <= 16 && s.length >= 8, `${s.length} samples`);
    assert.equal(s[0].t, 0, "the start survives");
    assert.equal(s[s.length - 1].t, 49, "the newest survives");
    assert.ok(s.some((x) => x.bytes.activations === 5000 * MiB), "the peak survives thinning");
    for (let i = 1; i < s.length; i++) assert.ok(s[i].t > s[i - 1].t, "time order kept");
  });

  it("has one shared history per process", () => {
    assert.equal(sharedMemoryHistory(), sharedMemoryHistory());
  });

  it("samples on a timer that does not keep the process alive, and stops", async () => {
    const h = new MemoryHistory();
    let n = 0;
    const stop = h.startSampling(() => vramSnapshot({ engine: { workspace: ++n * MiB }, gpu: noGpu, host }), 10);
    await new Promise((r) => setTimeout(r, 80));
    stop();
    const count = h.samples().length;
    assert.ok(count >= 3, `${count} samples in 80 ms at 10 ms`);
    await new Promise((r) => setTimeout(r, 40));
    assert.equal(h.samples().length, count, "no samples after stop");
  });
});

describe("%vram bundle", () => {
  it("shows the device headline, the table, host RAM and a stacked plot of the history", () => {
    const pid = 77;
    const h = new MemoryHistory();
    for (let i = 0; i < 10; i++) h.record(vramSnapshot({ engine: engineReport(), gpu: nvmlGpu(rand(3000, 4000) * MiB, [{ pid, usedBytes: 2000 * MiB }, { pid: 78, usedBytes: 512 * MiB }], pid), pid, host, now: i * 500 }));
    const s = vramSnapshot({ engine: engineReport(), gpu: nvmlGpu(3500 * MiB, [{ pid, usedBytes: 2000 * MiB }, { pid: 78, usedBytes: 512 * MiB }], pid), pid, host });
    const b = vramBundle(s, h.samples(), { embedLibrary: "never" });
    assert.match(b["text/plain"], /NVIDIA H100 80GB HBM3: 3\.42 GiB used of 80\.0 GiB/);
    assert.match(b["text/plain"], /other processes +512 MiB/);
    assert.match(b["text/plain"], /host RAM: 40\.0 GiB available of 64\.0 GiB/);
    const fig = b[PLOTLY_MIME]!;
    assert.ok(fig.data.some((t) => t.name === "other processes" && t.stackgroup === "memory"));
    assert.ok(fig.data.some((t) => t.name === "device in use"));
    assert.equal((fig.data[0].x as number[]).length, 10);
    assert.match(b["text/html"]!, /<table class="tsloth-vram"/);
    assert.ok(b["image/svg+xml"]!.includes('data-series="other processes"'));
  });

  it("without a GPU titles the plot with the backend and says what it shows", () => {
    const b = vramBundle(vramSnapshot({ engine: engineReport(), backend: "cpu", gpu: noGpu, host }), undefined, { embedLibrary: "never" });
    assert.match(b["text/plain"], /^no GPU: cpu backend holds/);
    assert.match(b["text/plain"], /showing the cpu backend's accounting/);
    assert.match(b["image/svg+xml"]!, /Memory by category \(cpu backend, no GPU\)/);
    assert.equal((b[PLOTLY_MIME]!.data[0].x as number[]).length, 1, "a snapshot alone is one point");
  });
});
