import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { envBundle, envReport } from "../../lib/env/env-report.js";
import { gpuInfo, usableGpuBytes } from "../../lib/env/gpu-info.js";
import { diskSpace, hostInfo } from "../../lib/env/host-info.js";
import type { Nvml } from "../../lib/env/nvml.js";

const GiB = 1024 ** 3;

function fakeNvml(ownPid: number): Nvml {
  return {
    driverVersion: () => "550.54.15",
    cudaDriverVersion: () => "12.4",
    deviceCount: () => 1,
    device: (index) => ({
      index,
      name: "NVIDIA H100 80GB HBM3",
      totalBytes: 80 * GiB,
      freeBytes: 70 * GiB,
      usedBytes: 10 * GiB,
      computeCapability: [9, 0],
      processes: [
        { pid: ownPid, usedBytes: 6 * GiB },
        { pid: ownPid + 1, usedBytes: 3 * GiB },
      ],
    }),
  };
}

describe("host and GPU information", () => {
  it("reads this machine's CPUs, RAM, OS and free disk", async () => {
    const h = await hostInfo({ diskPaths: [process.cwd(), "/definitely/not/here/yet"] });
    assert.ok(h.physicalCpus >= 1 && h.logicalCpus >= h.physicalCpus);
    assert.ok(h.ramTotalBytes > 256 * 1024 ** 2 && h.ramAvailableBytes <= h.ramTotalBytes);
    assert.ok(h.os.length > 0);
    assert.equal(h.disks.length, 2);
    for (const d of h.disks) assert.ok(d.freeBytes > 0 && d.freeBytes <= d.totalBytes);
    assert.equal(h.disks[1].totalBytes, diskSpace("/").totalBytes, "a missing folder reports its nearest existing parent's filesystem");
  });

  it("reports GPUs from NVML with this process's own usage", () => {
    const g = gpuInfo({ nvml: fakeNvml(4242), pid: 4242 });
    assert.ok(g.available);
    assert.equal(g.devices[0].ownProcessBytes, 6 * GiB);
    assert.deepEqual(g.devices[0].computeCapability, [9, 0]);
    assert.equal(g.cudaDriverVersion, "12.4");
  });

  it("counts as usable the device total less what other processes hold", () => {
    const g = gpuInfo({ nvml: fakeNvml(4242), pid: 4242 });
    assert.equal(usableGpuBytes(g), 80 * GiB - (10 * GiB - 6 * GiB));
    assert.equal(usableGpuBytes({ available: false, reason: "none" }), undefined);
  });

  it("says no GPU, with the reason, where NVML is absent", () => {
    const g = gpuInfo({ nvml: null });
    assert.equal(g.available, false);
    assert.match(!g.available ? g.reason : "", /NVML/);
  });

  it("answers on this machine without throwing, GPU or not", () => {
    const g = gpuInfo();
    if (g.available) assert.ok(g.devices[0].totalBytes > 0);
    else assert.ok(g.reason.length > 0);
  });

  it("renders %env as text and HTML with platform, GPU, host and backend", async () => {
    const host = await hostInfo({ diskPaths: ["/"] });
    const r = await envReport({ backend: "cuda", gpu: gpuInfo({ nvml: fakeNvml(1), pid: 1 }), host, platform: { env: { COLAB_GPU: "1" } } });
    const b = envBundle(r);
    for (const s of ["colab", "NVIDIA H100 80GB HBM3", "compute capability 9.0", "550.54.15", `${host.physicalCpus} physical`, "backend", "cuda", "disk /"]) {
      assert.ok(b["text/plain"].includes(s), `text has "${s}"`);
    }
    assert.match(b["text/plain"], /CUDA \(driver\) +12\.4/);
    assert.match(b["text/html"]!, /<table class="tsloth-env"/);
    assert.match(b["text/html"]!, /NVIDIA H100 80GB HBM3/);
    assert.doesNotThrow(() => JSON.stringify(b["application/json"]));
  });

  it("escapes what it shows in HTML", async () => {
    const host = await hostInfo({ diskPaths: ["/"] });
    const r = await envReport({ backend: "<cpu & co>", gpu: { available: false, reason: "none" }, host, platform: { env: {} } });
    assert.match(envBundle(r)["text/html"]!, /&lt;cpu &amp; co&gt;/);
    assert.match(envBundle(r)["text/plain"], /GPU +none/);
  });
});
