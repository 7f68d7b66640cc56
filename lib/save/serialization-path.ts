// Which way merged tensors are written, measured by bench/save/serialization.ts on a Llama-3.2-1B
// shaped merge (bench/NOTES.md, "Saving"):
//   "positioned": synchronous positioned writes of each merged block into its place in the shard;
//   "overlapped": the same writes issued on libuv's thread pool while the next block is merged;
//   append-then-copy (ShardedSafetensorsWriter, for tensors of unknown size) writes everything twice
//   and was the slowest everywhere, so merged_16bit never uses it.
// With one usable CPU the I/O thread only takes turns with the merge and positioned writes were
// (slightly) cheapest; with two, overlapping was cheapest. Above two CPUs overlapping stays the choice.
import { availableParallelism } from "node:os";
import si from "systeminformation";
import type { SerializationPath } from "./save-options.js";

export const FEW_CPUS = 2;

/** Physical cores this process can use (a CPU affinity mask or container limit can lower it). */
export async function physicalCpuCount(): Promise<number> {
  const cpu = await si.cpu();
  return Math.max(1, Math.min(cpu.physicalCores || cpu.cores, availableParallelism()));
}

export function chooseSerializationPath(physicalCpus: number, override?: SerializationPath): { path: SerializationPath; line: string } {
  if (override) return { path: override, line: `tsloth: writing merged tensors with ${override} writes (chosen by option).` };
  if (physicalCpus <= 1)
    return {
      path: "positioned",
      line: "tsloth: 1 physical CPU: writing merged blocks synchronously in place, the cheapest path measured with one CPU " +
        "(an I/O thread would only take turns with the merge; appending then copying writes twice).",
    };
  if (physicalCpus <= FEW_CPUS)
    return {
      path: "overlapped",
      line: `tsloth: ${physicalCpus} physical CPUs: writing each merged block in place on an I/O thread while the next is merged, ` +
        "the cheapest path measured on 2 CPUs (10% faster than synchronous writes, 25% faster than appending then copying).",
    };
  return { path: "overlapped", line: `tsloth: ${physicalCpus} physical CPUs: merging the next block while the previous one is written.` };
}
