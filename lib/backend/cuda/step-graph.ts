// Recorded decode steps on the GPU: the library captures every launch a step issues into a CUDA
// graph (kernels-cuda/src/graph.cu), replayed with one call. Recording is skipped while the per-op
// profile is on (it synchronizes after every call, which a capture forbids) or when
// TSLOTH_DECODE_GRAPHS=0 asks for eager steps.
import type { RecordedStep, Tensor } from "../types.js";
import type { CudaBackend } from "./backend.js";
import { check } from "./native.js";
import { opProfileEnabled } from "./op-profile.js";

export function recordStep(be: CudaBackend, body: () => Tensor): { step: RecordedStep; output: Tensor } | null {
  if (opProfileEnabled() || process.env.TSLOTH_DECODE_GRAPHS === "0") return null;
  const lib = be.lib;
  check(lib.graphCaptureBegin(), "tsl_graph_capture_begin");
  let output: Tensor;
  try {
    output = body();
  } catch (e) {
    lib.graphCaptureAbort();
    throw e;
  }
  const handle = new BigUint64Array(1);
  const status = lib.graphCaptureEnd(handle);
  if (status !== 0) {
    be.free(output);
    check(status, "tsl_graph_capture_end");
  }
  let live = true;
  const step: RecordedStep = {
    replay: () => check(lib.graphLaunch(handle[0]), "tsl_graph_launch"),
    free: () => {
      if (!live) return;
      live = false;
      check(lib.graphDestroy(handle[0]), "tsl_graph_destroy");
    },
  };
  return { step, output };
}
