// The longest sequence a shape can train at batch 1 on this card, as the engine's allocation plan
// predicts it (the same plan %estimate uses, checked against measured peaks in
// test/memory/estimate-vs-measured): a binary search over sequence length for the largest one whose
// planned device peak fits the card's free memory and whose offloaded layer inputs fit the host's
// RAM. bench/cuda/longest-seq.sh then trains real steps at the lengths it names.
//   node dist/bench/cuda/longest-seq.js --shape 8B [--gib 79] [--host-gib 100] [--checkpoint unsloth]
import { freemem } from "node:os";
import { CudaBackend } from "../../lib/backend/cuda/index.js";
import { CUDA_TRAITS } from "../../lib/backend/cuda/traits.js";
import { freeDeviceBytes } from "../../lib/backend/cuda/decode-ops.js";
import type { CheckpointPolicy } from "../../lib/model/checkpoint-policy.js";
import { engineAllocationPlan } from "../../lib/memory/estimate-plan.js";
import { estimatePeakMemory } from "../../lib/memory/estimator.js";
import { shapeConfig } from "../random-llama.js";
import { arg } from "../args.js";

const GIB = 2 ** 30;
/** Lengths searched in steps of this many tokens (and never below it). */
const STEP = 1024;

function main(): void {
  const shape = arg("shape") ?? "8B";
  const checkpoint = (arg("checkpoint") ?? "unsloth") as CheckpointPolicy;
  const config = shapeConfig(shape);
  const deviceBytes = arg("gib") ? Number(arg("gib")) * GIB : freeDeviceBytes(new CudaBackend());
  // Pinned host memory beyond ~85% of what is free would starve the process of pageable RAM.
  const hostBytes = arg("host-gib") ? Number(arg("host-gib")) * GIB : 0.85 * freemem();
  const plan = engineAllocationPlan(CUDA_TRAITS);
  const estimate = (seq: number) => estimatePeakMemory(config, { batch: 1, seq, r: 16, checkpoint, plan });
  const fits = (seq: number) => {
    const e = estimate(seq);
    return e.deviceBytes <= deviceBytes && e.hostBytes <= hostBytes;
  };
  if (!fits(STEP)) throw new Error(`tsloth: ${shape} does not fit ${(deviceBytes / GIB).toFixed(1)} GiB even at ${STEP} tokens`);
  let lo = 1, hi = 2; // in units of STEP: lo fits, hi is the first power of two that does not
  while (fits(hi * STEP)) [lo, hi] = [hi, hi * 2];
  while (hi - lo > 1) {
    const mid = (lo + hi) >> 1;
    if (fits(mid * STEP)) lo = mid;
    else hi = mid;
  }
  const best = estimate(lo * STEP);
  console.log(JSON.stringify({
    shape, batch: 1, checkpoint, predicted_max_seq: lo * STEP,
    device_free_gib: +(deviceBytes / GIB).toFixed(2), host_limit_gib: +(hostBytes / GIB).toFixed(2),
    planned_device_gib: +(best.deviceBytes / GIB).toFixed(2), planned_host_gib: +(best.hostBytes / GIB).toFixed(2),
    limited_by: estimate(hi * STEP).hostBytes > hostBytes ? "host RAM (offloaded layer inputs)" : "device memory",
  }));
}

main();
