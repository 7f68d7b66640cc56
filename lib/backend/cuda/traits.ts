// What the memory planner must know of the CUDA backend, without loading it (no GPU needed to plan).
import type { BackendTraits } from "../types.js";

/**
 * Measured on an H100 (bench/cuda/offload-threshold.ts, bench/NOTES.md): offloading layer inputs of
 * 8 MiB or more costs under 1% of the step against `true`; 4 MiB and less cost 5–18%.
 */
export const CUDA_OFFLOAD_MIN_BYTES = 8 * 2 ** 20;

export const CUDA_TRAITS: BackendTraits = {
  computeDtype: "bf16",
  offloadMinBytes: CUDA_OFFLOAD_MIN_BYTES,
  // tsl_host_alloc's pinned buffers are mapped at the same address on the device (unified addressing).
  kernelsReadHostMemory: true,
  // attention_bwd_fused.cu's fp32 dQ accumulator (head dims 64/128; planned for every head dim).
  attentionDqScratch: true,
};
