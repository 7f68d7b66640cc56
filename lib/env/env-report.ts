// What %env shows: the platform, GPU, host and which backend is active, as one report object and
// its text/plain and text/html renderings.
import { escapeXml, formatBytes } from "../plots/format.js";
import type { MimeBundle } from "../plots/mime-bundle.js";
import { type GpuInfo, gpuInfo } from "./gpu-info.js";
import { type HostInfo, hostInfo } from "./host-info.js";
import { type DetectPlatformOptions, detectPlatform, type Platform } from "./platform.js";

export interface EnvReport {
  platform: Platform;
  gpu: GpuInfo;
  host: HostInfo;
  /** Which backend is active ("cuda", "cpu", ...), as the caller knows it; undefined before a model loads. */
  backend: string | undefined;
  node: string;
}

export interface EnvReportOptions {
  backend?: string;
  /** Where models and outputs go; their free disk space is reported. */
  diskPaths?: readonly string[];
  platform?: DetectPlatformOptions;
  /** Injected facts (tests); read from the machine when absent. */
  gpu?: GpuInfo;
  host?: HostInfo;
}

export async function envReport(opts: EnvReportOptions = {}): Promise<EnvReport> {
  return {
    platform: detectPlatform(opts.platform),
    gpu: opts.gpu ?? gpuInfo(),
    host: opts.host ?? (await hostInfo({ diskPaths: opts.diskPaths })),
    backend: opts.backend,
    node: process.version,
  };
}

/** The report as [section, [label, value][]] rows, shared by both renderings. */
export function envRows(r: EnvReport): [string, [string, string][]][] {
  const platformRows: [string, string][] = [
    ["platform", `${r.platform.name} (${r.platform.reason})`],
    ["temporary files", r.platform.tempDir],
    ["backend", r.backend ?? "none active yet (loads with the first model)"],
    ["Node.js", r.node],
  ];
  const gpuRows: [string, string][] = r.gpu.available
    ? [
        ["driver", r.gpu.driverVersion],
        ["CUDA (driver)", r.gpu.cudaDriverVersion],
        ...r.gpu.devices.map((d): [string, string] => [
          `GPU ${d.index}`,
          `${d.name}, compute capability ${d.computeCapability[0]}.${d.computeCapability[1]}, ` +
            `${formatBytes(d.totalBytes)} total, ${formatBytes(d.freeBytes)} free`,
        ]),
      ]
    : [["GPU", `none (${r.gpu.reason})`]];
  const hostRows: [string, string][] = [
    ["CPUs", `${r.host.physicalCpus} physical, ${r.host.logicalCpus} logical${r.host.cpuModel ? ` (${r.host.cpuModel})` : ""}`],
    ["RAM", `${formatBytes(r.host.ramTotalBytes)} total, ${formatBytes(r.host.ramAvailableBytes)} available`],
    ["OS", r.host.os],
    ...r.host.disks.map((d): [string, string] => [`disk ${d.path}`, `${formatBytes(d.freeBytes)} free of ${formatBytes(d.totalBytes)}`]),
  ];
  return [
    ["tsloth", platformRows],
    ["GPU", gpuRows],
    ["host", hostRows],
  ];
}

export function envText(r: EnvReport): string {
  const rows = envRows(r);
  const width = Math.max(...rows.flatMap(([, rs]) => rs.map(([k]) => k.length)));
  return rows.map(([section, rs]) => [`${section}:`, ...rs.map(([k, v]) => `  ${k.padEnd(width)}  ${v}`)].join("\n")).join("\n");
}

export function envHtml(r: EnvReport): string {
  const body = envRows(r)
    .map(
      ([section, rs]) =>
        `<tr><th colspan="2" style="text-align:left;padding:8px 8px 2px;border-bottom:1px solid #ddd">${escapeXml(section)}</th></tr>` +
        rs.map(([k, v]) => `<tr><td style="padding:2px 8px;color:#555;white-space:nowrap;text-align:left">${escapeXml(k)}</td><td style="padding:2px 8px;text-align:left">${escapeXml(v)}</td></tr>`).join(""),
    )
    .join("");
  return `<table class="tsloth-env" style="border-collapse:collapse;font-family:system-ui,-apple-system,'Segoe UI',Helvetica,Arial,sans-serif;font-size:13px">${body}</table>`;
}

/** %env's output. */
export function envBundle(r: EnvReport): MimeBundle {
  return { "text/plain": envText(r), "text/html": envHtml(r), "application/json": r };
}
