// Decode steps replayed from a recording instead of issued op by op. A decode step of a large model
// is a few hundred small kernels whose host-side issue cost exceeds their GPU time; recorded once
// (DecodeBackend.recordStep: a CUDA graph on the GPU), a step is one replay. A recording fixes its
// launch shapes and buffer addresses, so everything that changes from step to step lives in input
// tensors kept here and rewritten before each replay: token ids, positions, slots, context lengths,
// and block tables padded to a fixed width; attention splits long contexts by the table's capacity
// instead of the current longest context. A new recording is made when what it fixed changes: the
// number of running sequences, or the cache's storage (the contiguous cache adds a segment every
// KV_CACHE_INCREMENT tokens). A step with a new shape first runs eagerly, so one-off shapes are not
// recorded and every kernel has run once before a capture.
import type { DecodeBackend, KvSegment, RecordedStep, Tensor } from "../backend/types.js";
import {
  cachedStepGreedyIds, cachedStepLogits, freeStepTensors, stepOutputTensor, type CachedStep, type StepTensors,
} from "../model/cached-forward.js";
import type { LlamaModel } from "../model/llama.js";

interface Recording {
  key: string;
  inputs: StepTensors;
  step: RecordedStep;
  /** The logits, or the greedy ids (the key says which). */
  output: Tensor;
}

export class DecodeStepGraphs {
  /** Steps served by a replay, recordings made, and why recording stopped (null while it works). */
  replays = 0;
  /** Wall time of the replays and the downloads of their outputs, which wait for them (their GPU time, in effect). */
  replaySeconds = 0;
  recordings = 0;
  unavailable: string | null = null;
  private current: Recording | null = null;
  /** What each input tensor holds on the device, so unchanged inputs are not uploaded again. */
  private readonly written = new WeakMap<Tensor, Int32Array>();
  private lastEagerKey: string | null = null;

  /** `tableWidth`: blocks per sequence the padded block tables hold (the longest sequence's budget). */
  constructor(private readonly model: LlamaModel, private readonly be: DecodeBackend, private readonly tableWidth: number) {}

  /** Logits [B · vocab] of a decode step (one new token per sequence), replayed where possible. */
  logits(step: CachedStep, segments: (layer: number) => readonly KvSegment[]): Float32Array {
    return this.replayed(step, segments, false, (t) => this.be.download(t), () => cachedStepLogits(this.model, this.be, segments, step));
  }

  /** Greedy token ids [B] of a decode step, picked on the device, replayed where possible. */
  greedyIds(step: CachedStep, segments: (layer: number) => readonly KvSegment[]): Int32Array {
    return this.replayed(step, segments, true, (t) => this.be.downloadRaw(t) as Int32Array,
      () => cachedStepGreedyIds(this.model, this.be, segments, step));
  }

  private replayed<T>(step: CachedStep, segments: (layer: number) => readonly KvSegment[], greedy: boolean, read: (t: Tensor) => T, eager: () => T): T {
    const B = step.cuQueryLens.length - 1;
    if (this.unavailable || step.attention !== "cache" || step.ids.length !== B || step.maxBlocks > this.tableWidth) return eager();
    const key = `${B}/${segments(0).length}/${step.blockSize}/${greedy ? "ids" : "logits"}`;
    if (this.current?.key !== key) {
      this.drop();
      if (this.lastEagerKey !== key) {
        this.lastEagerKey = key;
        return eager();
      }
      const made = this.record(key, step, segments, greedy);
      if (!made) return eager();
      this.current = made;
      this.recordings++;
    } else this.write(this.current.inputs, step);
    const t0 = performance.now();
    this.current.step.replay();
    const out = read(this.current.output);
    this.replaySeconds += (performance.now() - t0) / 1000;
    this.replays++;
    return out;
  }

  /** Releases the recording and its inputs. */
  free(): void {
    this.drop();
  }

  private record(key: string, step: CachedStep, segments: (layer: number) => readonly KvSegment[], greedy: boolean): Recording | null {
    const inputs = this.allocInputs(step);
    try {
      this.write(inputs, step);
      const made = this.be.recordStep(() => stepOutputTensor(this.model, this.be, segments, step, inputs, greedy));
      if (!made) {
        this.unavailable = "the backend does not record steps";
        freeStepTensors(this.be, inputs);
        return null;
      }
      return { key, inputs, step: made.step, output: made.output };
    } catch (e) {
      this.unavailable = `recording a decode step failed: ${(e as Error).message}`;
      freeStepTensors(this.be, inputs);
      return null;
    }
  }

  private allocInputs(step: CachedStep): StepTensors {
    const B = step.cuQueryLens.length - 1;
    const i32 = (shape: number[]) => this.be.zeros(shape, "i32", "activations");
    return {
      ids: i32([B]), positions: i32([B]), cu: i32([B + 1]), slots: i32([B]), lastRows: i32([B]),
      view: {
        blockSize: step.blockSize,
        blockTables: i32([B, this.tableWidth]),
        contextLens: i32([B]),
        maxContextLen: this.tableWidth * step.blockSize,
      },
    };
  }

  /** Uploads what changed since the last step (ids, positions, slots and lengths every step; tables every 16). */
  private write(t: StepTensors, step: CachedStep): void {
    const B = step.cuQueryLens.length - 1, W = this.tableWidth;
    const tables = new Int32Array(B * W);
    for (let b = 0; b < B; b++) tables.set(step.blockTables.subarray(b * step.maxBlocks, (b + 1) * step.maxBlocks), b * W);
    const lastRows = Int32Array.from({ length: B }, (_, b) => step.cuQueryLens[b + 1] - 1);
    const put = (dst: Tensor, data: Int32Array) => {
      const prev = this.written.get(dst);
      if (prev && prev.length === data.length && prev.every((v, i) => v === data[i])) return;
      this.be.uploadInto(dst, data);
      this.written.set(dst, data);
    };
    put(t.ids, step.ids);
    put(t.positions, step.positions);
    put(t.cu, step.cuQueryLens);
    put(t.slots, step.slots);
    put(t.lastRows, lastRows);
    put(t.view.blockTables, tables);
    put(t.view.contextLens, step.contextLens);
  }

  private drop(): void {
    const r = this.current;
    if (!r) return;
    this.current = null;
    this.be.free(r.output);
    r.step.free();
    freeStepTensors(this.be, r.inputs);
  }
}
