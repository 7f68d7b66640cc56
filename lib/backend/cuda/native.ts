// The koffi binding to libtsloth_cuda.so (kernels-cuda/include/tsloth_cuda.h), loaded on first use.
// Out-parameters are passed as one-element typed arrays (koffi hands their memory to C directly).
// Every call goes through `check`, which turns a status into a JS exception naming the op and the
// CUDA error, or an OutOfMemoryError with the bytes asked, free and in use by category.
import { existsSync } from "node:fs";
import { join } from "node:path";
import koffi from "koffi";
import { projectRoot } from "../../paths.js";
import { formatBytes, MEMORY_CATEGORIES, OutOfMemoryError, type MemoryCategory } from "../types.js";
import { bindDeviceProfiler, opProfileEnabled, opProfileMode, record, type OpTime } from "./op-profile.js";

/** Status codes of the C ABI (tsl_status). */
export const TSL_OK = 0;
export const TSL_ERR_CUDA = 1;
export const TSL_ERR_OOM = 2;
export const TSL_ERR_INVALID = 3;
export const TSL_ERR_NO_DEVICE = 4;
export const TSL_ERR_CUBLASLT = 5;

/** An error reported by the CUDA library: `op` is the C function, the message CUDA's own words. */
export class CudaError extends Error {
  constructor(
    readonly op: string,
    readonly status: number,
    message: string,
  ) {
    super(message);
    this.name = "CudaError";
  }
}

/** Where the library is looked for: $TSLOTH_CUDA_LIB, else kernels-cuda/build (kernels-cuda/build.sh). */
export function cudaLibraryPath(): string {
  return process.env.TSLOTH_CUDA_LIB ?? join(projectRoot(), "kernels-cuda", "build", "libtsloth_cuda.so");
}

export type Fn = ((...args: any[]) => any) & { async: (...args: any[]) => void };

const SIGNATURES = {
  abiVersion: "int32_t tsl_abi_version(void)",
  lastError: "const char *tsl_last_error(void)",
  lastErrorAny: "int32_t tsl_last_error_any(void *buf, int32_t size)",
  lastOom: "void tsl_last_oom(void *out)",
  deviceCount: "int32_t tsl_device_count(void)",
  init: "int32_t tsl_init(int32_t device)",
  synchronize: "int32_t tsl_synchronize(void)",
  gemmAvailable: "int32_t tsl_gemm_available(void)",
  malloc: "int32_t tsl_malloc(uint64_t bytes, int32_t category, uint64_t *out)",
  free: "int32_t tsl_free(void *p)",
  hostAlloc: "int32_t tsl_host_alloc(uint64_t bytes, uint64_t *out)",
  hostFree: "int32_t tsl_host_free(void *p)",
  memoryStats: "int32_t tsl_memory_stats(uint64_t *current, uint64_t *peak, uint64_t *cached, uint64_t *peakTotal)",
  resetPeak: "int32_t tsl_reset_peak(void)",
  emptyCache: "int32_t tsl_empty_cache(void)",
  upload: "int32_t tsl_upload(void *dst, const void *src, uint64_t bytes)",
  download: "int32_t tsl_download(void *dst, const void *src, uint64_t bytes)",
  copyD2d: "int32_t tsl_copy_d2d(void *dst, const void *src, uint64_t bytes)",
  memsetZero: "int32_t tsl_memset_zero(void *dst, uint64_t bytes)",
  copyD2hAsync: "int32_t tsl_copy_d2h_async(void *dst, const void *src, uint64_t bytes, uint64_t *event)",
  copyH2dAsync: "int32_t tsl_copy_h2d_async(void *dst, const void *src, uint64_t bytes, uint64_t *event)",
  eventSync: "int32_t tsl_event_sync(uint64_t event)",
  eventDestroy: "int32_t tsl_event_destroy(uint64_t event)",
  argmaxRows: "int32_t tsl_argmax_rows(const void *x, int32_t dtype, int64_t rows, int64_t cols, void *out)",
  graphCaptureBegin: "int32_t tsl_graph_capture_begin(void)",
  graphCaptureEnd: "int32_t tsl_graph_capture_end(uint64_t *graph)",
  graphCaptureAbort: "int32_t tsl_graph_capture_abort(void)",
  graphLaunch: "int32_t tsl_graph_launch(uint64_t graph)",
  graphDestroy: "int32_t tsl_graph_destroy(uint64_t graph)",
  cast: "int32_t tsl_cast(const void *src, int32_t srcDtype, void *dst, int32_t dstDtype, uint64_t n)",
  add: "int32_t tsl_add(const void *a, const void *b, void *dst, int32_t dtype, uint64_t n)",
  axpy: "int32_t tsl_axpy(void *dst, int32_t dstDtype, const void *src, int32_t srcDtype, float alpha, uint64_t n)",
  scale: "int32_t tsl_scale(void *x, int32_t dtype, float s, uint64_t n)",
  sumSquares: "int32_t tsl_sum_squares(const uint64_t *ptrs, const uint64_t *sizes, const int32_t *dtypes, int32_t count, double *out)",
  nf4Dequantize:
    "int32_t tsl_nf4_dequantize(const void *packed, uint64_t n, int32_t blocksize, const void *absmaxF32, const void *absmaxQ, const void *nestedAbsmax, const void *nestedCode, int32_t nestedBlocksize, float nestedOffset, void *out, int32_t outDtype)",
  gemm: "int32_t tsl_gemm(int32_t ta, int32_t tb, int64_t M, int64_t N, int64_t K, float alpha, const void *a, const void *b, int32_t abDtype, float beta, void *c, int32_t cDtype, const void *bias)",
  embeddingFwd: "int32_t tsl_embedding_fwd(const void *table, int32_t tableDtype, const void *ids, int64_t T, int64_t V, int64_t H, void *out)",
  embeddingBwd: "int32_t tsl_embedding_bwd(const void *dy, const void *ids, int64_t T, int64_t V, int64_t H, void *dtable)",
  rmsnormFwd: "int32_t tsl_rmsnorm_fwd(const void *x, const void *w, int32_t wDtype, int64_t T, int64_t H, float eps, void *y, void *rstd)",
  addRmsnormFwd: "int32_t tsl_add_rmsnorm_fwd(const void *a, const void *b, const void *w, int32_t wDtype, int64_t T, int64_t H, float eps, void *sum, void *y)",
  rmsnormBwd: "int32_t tsl_rmsnorm_bwd(const void *dy, const void *x, const void *w, int32_t wDtype, const void *rstd, int64_t T, int64_t H, void *dx)",
  rope: "int32_t tsl_rope(const void *x, const void *positions, const void *invFreq, int64_t T, int32_t heads, int32_t headDim, int32_t direction, void *y)",
  swigluFwd: "int32_t tsl_swiglu_fwd(const void *gate, const void *up, uint64_t n, void *h)",
  swigluBwd: "int32_t tsl_swiglu_bwd(const void *dh, const void *gate, const void *up, uint64_t n, void *dgate, void *dup)",
  attentionFwd:
    "int32_t tsl_attention_fwd(const void *q, const void *k, const void *v, const void *cu, int32_t seqs, int32_t maxLen, int64_t T, int32_t Hq, int32_t Hkv, int32_t D, float scale, void *o, void *lse)",
  attentionBwd:
    "int32_t tsl_attention_bwd(const void *dO, const void *q, const void *k, const void *v, const void *o, const void *lse, const void *cu, int32_t seqs, int32_t maxLen, int64_t T, int32_t Hq, int32_t Hkv, int32_t D, float scale, void *dq, void *dk, void *dv)",
  linearFwd:
    "int32_t tsl_linear_fwd(const void *x, const void *w, const void *bias, int32_t biasDtype, const void *a, const void *b, float scale, int64_t T, int64_t inF, int64_t outF, int32_t r, void *y)",
  linearBwd:
    "int32_t tsl_linear_bwd(const void *dy, const void *x, const void *w, const void *a, const void *b, float scale, int64_t T, int64_t inF, int64_t outF, int32_t r, void *dx, void *da, void *db)",
  // grouped LoRA linears (q/k/v, gate/up over one x): the group's xa and g are [T, Σr]
  loraDownGroup: "int32_t tsl_lora_down_group(int32_t count, const uint64_t *a, const int32_t *r, const void *x, int64_t T, int64_t inF, void *xa)",
  linearFwdXa:
    "int32_t tsl_linear_fwd_xa(const void *x, const void *w, const void *bias, int32_t biasDtype, const void *xa, int64_t ldXa, const void *b, float scale, int64_t T, int64_t inF, int64_t outF, int32_t r, void *y)",
  linearBwdXa:
    "int32_t tsl_linear_bwd_xa(const void *dy, const void *w, const void *b, float scale, int64_t T, int64_t inF, int64_t outF, int32_t r, const void *xa, int64_t ld, float dxBeta, void *dx, void *g, void *db)",
  loraUpGroupBwd:
    "int32_t tsl_lora_up_group_bwd(int32_t count, const uint64_t *a, const int32_t *r, const uint64_t *da, const void *x, const void *g, int64_t T, int64_t inF, void *dx)",
  ceFwd: "int32_t tsl_ce_lmhead_fwd(const void *h, const void *head, const void *labels, int64_t T, int64_t H, int64_t V, int64_t chunk, void *lossSum, void *lse)",
  ceBwd: "int32_t tsl_ce_lmhead_bwd(const void *h, const void *head, const void *labels, const void *lse, int64_t T, int64_t H, int64_t V, int64_t chunk, float gradScale, void *dh)",
  ceFused:
    "int32_t tsl_ce_lmhead_fused(const void *h, const void *head, const void *labels, int64_t T, int64_t H, int64_t V, int64_t chunk, float gradScale, void *lossSum, void *dh)",
  adamw:
    "int32_t tsl_adamw(const uint64_t *params, const uint64_t *grads, const uint64_t *m, const uint64_t *v, const uint64_t *sizes, int32_t count, float lr, float beta1, float beta2, float eps, float wd, int32_t step)",
  // generation (lib/infer): KV cache writes, attention over the cache, batch-1 NF4 decode
  kvCacheWrite:
    "int32_t tsl_kv_cache_write(const uint64_t *kSegs, const uint64_t *vSegs, const int32_t *segBlocks, int32_t nSegs, int32_t blockSize, const void *k, const void *v, int32_t srcDtype, const void *slots, int64_t T, int32_t width)",
  pagedAttention:
    "int32_t tsl_paged_attention(const void *q, const uint64_t *kSegs, const uint64_t *vSegs, const int32_t *segBlocks, int32_t nSegs, int32_t blockSize, const void *tables, int32_t maxBlocks, const void *cuQ, const void *contextLens, int32_t B, int64_t T, int32_t maxContextLen, int32_t Hq, int32_t Hkv, int32_t D, float scale, void *o)",
  nf4Gemv:
    "int32_t tsl_nf4_gemv(const void *packed, int64_t outF, int64_t inF, int32_t blocksize, const void *absmaxF32, const void *absmaxQ, const void *nestedAbsmax, const void *nestedCode, int32_t nestedBlocksize, float nestedOffset, const void *x, const void *bias, int32_t biasDtype, const void *a, const void *b, float scale, int32_t r, void *y)",
  nf4GemvGroup:
    "int32_t tsl_nf4_gemv_group(int32_t count, const uint64_t *packed, const int64_t *outF, int64_t inF, int32_t blocksize, const uint64_t *absmaxF32, const uint64_t *absmaxQ, const uint64_t *nestedAbsmax, const uint64_t *nestedCode, const int32_t *nestedBlocksize, const float *nestedOffset, const void *x, const uint64_t *bias, int32_t biasDtype, const uint64_t *a, const uint64_t *b, const float *scale, const int32_t *r, const uint64_t *y)",
  nf4GemmSmall:
    "int32_t tsl_nf4_gemm_small(const void *packed, int64_t outF, int64_t inF, int32_t blocksize, const void *absmaxF32, const void *absmaxQ, const void *nestedAbsmax, const void *nestedCode, int32_t nestedBlocksize, float nestedOffset, const void *x, int64_t T, const void *bias, int32_t biasDtype, const void *a, const void *b, float scale, int32_t r, void *y)",
  deviceInfo: "int32_t tsl_get_device_info(void *out)",
  // device-time profile (TSLOTH_CUDA_PROFILE=gpu; op-profile.ts)
  profileEnable: "int32_t tsl_profile_enable(int32_t on)",
  profileMark: "int32_t tsl_profile_mark(const char *label)",
  profileCollect: "int32_t tsl_profile_collect(int32_t *count)",
  profileEntry: "int32_t tsl_profile_entry(int32_t i, void *label, int32_t size, int64_t *calls, double *ms)",
  profileReset: "int32_t tsl_profile_reset(void)",
} as const;

export type Native = { [K in keyof typeof SIGNATURES]: Fn } & { path: string };

let loaded: Native | null = null;
let loadError: Error | null = null;

/** The bound library, loaded once; throws a clear error when it is missing or cannot load. */
export function native(): Native {
  if (loaded) return loaded;
  if (loadError) throw loadError;
  const path = cudaLibraryPath();
  try {
    if (!existsSync(path)) {
      throw new Error(`${path} does not exist: build it with kernels-cuda/build.sh (needs nvcc), or set TSLOTH_CUDA_LIB`);
    }
    const lib = koffi.load(path);
    const fns: Record<string, Fn> = {};
    for (const [name, sig] of Object.entries(SIGNATURES)) fns[name] = lib.func(sig) as Fn;
    loaded = Object.assign(fns, { path }) as unknown as Native;
    if (opProfileMode() === "gpu") bindDeviceProfiler(deviceProfiler(loaded));
    return loaded;
  } catch (e) {
    loadError = new Error(`tsloth: cannot load the CUDA library: ${(e as Error).message}`);
    throw loadError;
  }
}

/** Runs a library call on a koffi worker thread (for calls that block: syncs, event waits). */
export function callAsync(fn: Fn, ...args: unknown[]): Promise<number> {
  return new Promise((resolve, reject) => fn.async(...args, (err: unknown, res: number) => (err ? reject(err) : resolve(res))));
}

/** The library's message for a failure of a call made on this thread. */
export function lastError(): string {
  return String(native().lastError() ?? "");
}

/** The library's last message from any thread (for async calls that ran on a worker). */
export function lastErrorAnyThread(): string {
  const buf = Buffer.alloc(1024);
  native().lastErrorAny(buf, buf.length);
  return buf.toString("utf8", 0, Math.max(0, buf.indexOf(0)));
}

/** Throws unless status is TSL_OK; out of memory becomes OutOfMemoryError with the library's numbers. */
export function check(status: number, op: string, message?: string): void {
  if (status === TSL_OK) {
    if (opProfileEnabled() && op !== "tsl_synchronize") record(op, () => native().synchronize());
    return;
  }
  const msg = message ?? lastError();
  if (status === TSL_ERR_OOM) throw outOfMemory(msg);
  throw new CudaError(op, status, `tsloth CUDA ${op}: ${msg}`);
}

/** The library's device-time profile, switched on (TSLOTH_CUDA_PROFILE=gpu). */
function deviceProfiler(lib: Native): { mark(op: string): void; collect(): OpTime[]; reset(): void } {
  const must = (status: number, op: string) => {
    if (status !== TSL_OK) throw new CudaError(op, status, `tsloth CUDA ${op}: ${lastError()}`);
  };
  let enabled = false;
  const ensure = () => {
    if (!enabled) must(lib.profileEnable(1), "tsl_profile_enable");
    enabled = true;
  };
  return {
    mark(op) {
      ensure();
      must(lib.profileMark(op), "tsl_profile_mark");
    },
    collect() {
      ensure();
      const count = new Int32Array(1);
      must(lib.profileCollect(count), "tsl_profile_collect");
      const label = Buffer.alloc(256), calls = new BigInt64Array(1), ms = new Float64Array(1);
      const out: OpTime[] = [];
      for (let i = 0; i < count[0]; i++) {
        must(lib.profileEntry(i, label, label.length, calls, ms), "tsl_profile_entry");
        out.push({ op: label.toString("utf8", 0, Math.max(0, label.indexOf(0))), calls: Number(calls[0]), ms: ms[0] });
      }
      return out;
    },
    reset() {
      ensure();
      must(lib.profileReset(), "tsl_profile_reset");
    },
  };
}

const OOM_STRUCT_FIELDS = 3 + MEMORY_CATEGORIES.length;

function outOfMemory(msg: string): OutOfMemoryError {
  // tsl_last_oom fills {asked, free, total, in_use[7], category}; read it as raw u64 words.
  const raw = Buffer.alloc(OOM_STRUCT_FIELDS * 8 + 8);
  native().lastOom(raw);
  const u = (i: number) => Number(raw.readBigUInt64LE(i * 8));
  const category = MEMORY_CATEGORIES[raw.readInt32LE(OOM_STRUCT_FIELDS * 8)] ?? "activations";
  const inUse = MEMORY_CATEGORIES.map((c, i) => [c, u(3 + i)] as [MemoryCategory, number])
    .filter(([, b]) => b > 0)
    .map(([c, b]) => `${c} ${formatBytes(b)}`)
    .join(", ");
  return new OutOfMemoryError(
    category,
    u(0),
    u(1),
    `In use by tsloth: ${inUse || "nothing"} (device total ${formatBytes(u(2))}). ` +
      `Lower the batch size or max sequence length, or train with --checkpoint=unsloth. (${msg})`,
  );
}
