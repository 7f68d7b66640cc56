/*
 * tsloth_cuda: the C ABI of tsloth's CUDA kernels (libtsloth_cuda.so).
 *
 * Plain C so any FFI can call it (koffi from Node, ctypes from Python). Rules every function keeps:
 * - It returns a tsl_status. On anything but TSL_OK, tsl_last_error() (thread-local) names the
 *   function and the CUDA/cuBLASLt error; nothing aborts the process.
 * - TSL_ERR_OOM is out of device (or pinned host) memory; tsl_last_oom() gives the bytes asked,
 *   free and in use by category.
 * - Pointers named d_* are device pointers, h_* host pointers. All tensors are row-major and
 *   contiguous. Activations are [T, features] with T the packed token count; sequence bounds come
 *   as cu_seqlens (i32 [B+1], FlashAttention's varlen layout).
 * - Storage dtypes: activations bf16, LoRA adapters / gradients / optimizer state f32; small
 *   operands marked "any float" take a tsl_dtype (f32, bf16 or f16). Arithmetic is f32.
 * - Work is queued on the library's compute stream; tsl_synchronize() waits for it.
 */
#ifndef TSLOTH_CUDA_H
#define TSLOTH_CUDA_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define TSL_ABI_VERSION 1

typedef enum {
  TSL_OK = 0,
  TSL_ERR_CUDA = 1,        /* a CUDA runtime error (launch failure, illegal address, ...) */
  TSL_ERR_OOM = 2,         /* out of memory; see tsl_last_oom */
  TSL_ERR_INVALID = 3,     /* bad arguments (shape, dtype, null pointer) */
  TSL_ERR_NO_DEVICE = 4,   /* no CUDA device or driver */
  TSL_ERR_CUBLASLT = 5,    /* cuBLASLt missing or failing */
} tsl_status;

typedef enum { TSL_F32 = 0, TSL_BF16 = 1, TSL_F16 = 2, TSL_U8 = 3, TSL_I32 = 4 } tsl_dtype;

/* Memory categories, in the order of lib/backend/types.ts MEMORY_CATEGORIES. */
typedef enum {
  TSL_CAT_BASE_WEIGHTS = 0,
  TSL_CAT_ADAPTERS = 1,
  TSL_CAT_OPTIMIZER = 2,
  TSL_CAT_ACTIVATIONS = 3,
  TSL_CAT_OFFLOAD_HOST = 4,
  TSL_CAT_KV_CACHE = 5,
  TSL_CAT_WORKSPACE = 6,
  TSL_NUM_CATEGORIES = 7
} tsl_category;

typedef struct {
  uint64_t asked;                           /* bytes of the failing request */
  uint64_t free_bytes;                      /* device free bytes at the failure (after cache release) */
  uint64_t total_bytes;                     /* device total bytes */
  uint64_t in_use[TSL_NUM_CATEGORIES];      /* live bytes by category */
  int32_t category;                         /* category of the failing request */
} tsl_oom_info;

typedef struct {
  char name[256];
  int32_t major, minor;
  int32_t multiprocessors;
  uint64_t total_bytes, free_bytes;
  int32_t runtime_version, driver_version;
} tsl_device_info;

/* ---- runtime --------------------------------------------------------------------------- */
int32_t tsl_abi_version(void);
const char* tsl_last_error(void);
/* The most recent error of any thread, copied into buf (for calls made on worker threads, e.g.
 * koffi's async calls, whose thread-local message the caller cannot read). Returns its length. */
int32_t tsl_last_error_any(char* buf, int32_t size);
void tsl_last_oom(tsl_oom_info* out);
/* Number of devices (0 when there is no driver or GPU; never an error). */
int32_t tsl_device_count(void);
/* Select the device, create the compute and copy streams. Idempotent. */
tsl_status tsl_init(int32_t device);
tsl_status tsl_get_device_info(tsl_device_info* out);
tsl_status tsl_synchronize(void);
/* Queue compute work on another stream (a cudaStream_t cast to an integer; 0 = back to the
 * library's own stream), e.g. a framework's current stream when timing with its events. */
tsl_status tsl_set_compute_stream(uint64_t stream);
/* Whether cuBLASLt could be loaded (dlopen of libcublasLt.so.13, .so.12, .so or $TSLOTH_CUBLASLT). */
tsl_status tsl_gemm_available(void);

/* ---- memory (caching allocator, per-category accounting) ------------------------------ */
tsl_status tsl_malloc(uint64_t bytes, int32_t category, void** d_out);
tsl_status tsl_free(void* d_ptr);
/* Pinned host memory, accounted under TSL_CAT_OFFLOAD_HOST. */
tsl_status tsl_host_alloc(uint64_t bytes, void** h_out);
tsl_status tsl_host_free(void* h_ptr);
/* current/peak live bytes per category (arrays of TSL_NUM_CATEGORIES), plus cached (reserved
 * but unused) device bytes and the peak of the device total. Any pointer may be null. */
tsl_status tsl_memory_stats(uint64_t* current, uint64_t* peak, uint64_t* cached, uint64_t* peak_device_total);
tsl_status tsl_reset_peak(void);
/* Return cached blocks to the driver. */
tsl_status tsl_empty_cache(void);

/* ---- copies ---------------------------------------------------------------------------- */
tsl_status tsl_upload(void* d_dst, const void* h_src, uint64_t bytes);       /* synchronous */
tsl_status tsl_download(void* h_dst, const void* d_src, uint64_t bytes);     /* synchronous */
tsl_status tsl_copy_d2d(void* d_dst, const void* d_src, uint64_t bytes);     /* on the compute stream */
tsl_status tsl_memset_zero(void* d_dst, uint64_t bytes);
/* Asynchronous copies on the copy stream, ordered after the compute stream's work so far. They
 * return an event handle; tsl_event_wait makes later compute work wait for it, tsl_event_sync
 * blocks the host. The source/destination must stay alive until the event completes (tsl_free of
 * a device buffer with a pending copy is safe: the allocator holds the block back until then). */
tsl_status tsl_copy_d2h_async(void* h_dst, const void* d_src, uint64_t bytes, uint64_t* event_out);
tsl_status tsl_copy_h2d_async(void* d_dst, const void* h_src, uint64_t bytes, uint64_t* event_out);
tsl_status tsl_event_wait(uint64_t event);
tsl_status tsl_event_sync(uint64_t event);
/* 1 when complete, 0 when not yet (status via the return code). */
tsl_status tsl_event_query(uint64_t event, int32_t* done);
tsl_status tsl_event_destroy(uint64_t event);

/* Device-time profile (off by default): with it on, tsl_profile_mark records a timing event on the
 * compute stream (composite calls also mark named points inside), and the time between consecutive
 * marks is charged to the later mark's label. tsl_profile_collect synchronizes, folds the marks into
 * per-label totals and returns how many labels have time; tsl_profile_entry reads them, largest
 * first. tsl_profile_reset zeroes the totals. Marks are skipped while a graph is being captured. */
tsl_status tsl_profile_enable(int32_t on);
tsl_status tsl_profile_mark(const char* label);
tsl_status tsl_profile_collect(int32_t* count_out);
tsl_status tsl_profile_entry(int32_t i, char* label_buf, int32_t size, int64_t* calls, double* ms);
tsl_status tsl_profile_reset(void);

/* The LoRA update of an output at rank r <= 16 on tensor cores (the linear ops use it internally):
 * y[T, N] (bf16) += scale · u · f[N, r]ᵀ with f bf16 [N, r] and u bf16 [T, r] (row stride ldu), or
 * u transposed, [r, T] with row stride ldu, when u_transposed is nonzero. */
tsl_status tsl_lora_up_acc(void* d_y, int64_t T, int64_t N, const void* d_u, int64_t ldu, int32_t u_transposed,
                           const void* d_f, int32_t r, float scale);

/* Step graphs (CUDA graphs): the calls made between capture_begin and capture_end are recorded on
 * the compute stream instead of run, and replay together with one tsl_graph_launch. Buffers the
 * capture allocates stay reserved for the graphs (accounted as workspace while not live) until the
 * last graph is destroyed; inputs that change between replays must be rewritten in place. A call
 * that fails during a capture leaves it to tsl_graph_capture_abort, after which work runs as usual. */
tsl_status tsl_graph_capture_begin(void);
tsl_status tsl_graph_capture_end(uint64_t* graph_out);
tsl_status tsl_graph_capture_abort(void);
tsl_status tsl_graph_launch(uint64_t graph);
tsl_status tsl_graph_destroy(uint64_t graph);

/* ---- elementwise (dtype f32 | bf16 | f16; n elements) ------------------------------------ */
tsl_status tsl_cast(const void* d_src, int32_t src_dtype, void* d_dst, int32_t dst_dtype, uint64_t n);
/* dst = a + b */
tsl_status tsl_add(const void* d_a, const void* d_b, void* d_dst, int32_t dtype, uint64_t n);
/* dst += alpha * src (src may have another float dtype) */
tsl_status tsl_axpy(void* d_dst, int32_t dst_dtype, const void* d_src, int32_t src_dtype, float alpha, uint64_t n);
tsl_status tsl_scale(void* d_x, int32_t dtype, float s, uint64_t n);
/* Σ over tensors of Σ x², accumulated in f64 on the device; result on the host. */
tsl_status tsl_sum_squares(const void* const* d_ptrs, const uint64_t* sizes, const int32_t* dtypes, int32_t count, double* h_out);

/* ---- NF4 (QLoRA, Dettmers et al. 2023; bitsandbytes layout) ----------------------------- */
/* out[i] = NF4[nibble(i)] * absmax[i / blocksize], even i in the high nibble; n even.
 * If d_absmax_q is non-null the absmax are double-quantized:
 *   absmax[j] = nested_code[absmax_q[j]] * nested_absmax[j / nested_blocksize] + nested_offset
 * and d_absmax_f32 is ignored. out dtype: bf16 (or f32/f16). */
tsl_status tsl_nf4_dequantize(const uint8_t* d_packed, uint64_t n, int32_t blocksize, const float* d_absmax_f32,
                              const uint8_t* d_absmax_q, const float* d_nested_absmax, const float* d_nested_code,
                              int32_t nested_blocksize, float nested_offset, void* d_out, int32_t out_dtype);

/* ---- GEMM (cuBLASLt, bf16/f16 operands, f32 accumulate) ---------------------------------- */
/* Row-major C[M,N] = alpha * op(A)[M,K] · op(B)[K,N] + beta * C (+ bias[N] when d_bias).
 * trans_a: A stored [K,M]; trans_b: B stored [N,K]. A and B share ab_dtype (bf16 or f16, or f32);
 * C has c_dtype (f32, bf16 or f16); bias has c_dtype. */
tsl_status tsl_gemm(int32_t trans_a, int32_t trans_b, int64_t M, int64_t N, int64_t K, float alpha, const void* d_a,
                    const void* d_b, int32_t ab_dtype, float beta, void* d_c, int32_t c_dtype, const void* d_bias);

/* ---- embedding ------------------------------------------------------------------------- */
/* out[t,:] = table[ids[t],:]; table any float dtype [V,H], out bf16 [T,H]. An id outside [0,V) gives a
 * row of NaN (the check stays on the device, so a bad token id shows up in the loss, not a crash). */
tsl_status tsl_embedding_fwd(const void* d_table, int32_t table_dtype, const int32_t* d_ids, int64_t T, int64_t V,
                             int64_t H, void* d_out);
/* dtable[ids[t],:] += dy[t,:]; dy bf16 [T,H], dtable f32 [V,H] */
tsl_status tsl_embedding_bwd(const void* d_dy, const int32_t* d_ids, int64_t T, int64_t V, int64_t H, float* d_dtable);

/* ---- RMSNorm ---------------------------------------------------------------------------- */
/* x bf16 [T,H], w any float [H] → y bf16 [T,H], rstd f32 [T] */
tsl_status tsl_rmsnorm_fwd(const void* d_x, const void* d_w, int32_t w_dtype, int64_t T, int64_t H, float eps,
                           void* d_y, float* d_rstd);
/* Generation's residual step, bf16 rows [T, H]: sum = a + b (rounded to bf16 as tsl_add), y =
 * rmsnorm(sum) as tsl_rmsnorm_fwd (no rstd); bit-identical to those two calls. sum may not alias a or b. */
tsl_status tsl_add_rmsnorm_fwd(const void* d_a, const void* d_b, const void* d_w, int32_t w_dtype, int64_t T, int64_t H,
                               float eps, void* d_sum, void* d_y);
/* dx = rstd * (g - x̂ * mean(g x̂)), g = dy * w */
tsl_status tsl_rmsnorm_bwd(const void* d_dy, const void* d_x, const void* d_w, int32_t w_dtype, const float* d_rstd,
                           int64_t T, int64_t H, void* d_dx);

/* ---- RoPE (HF rotate-half) -------------------------------------------------------------- */
/* x bf16 [T, n_heads*head_dim], positions i32 [T], inv_freq f32 [head_dim/2] → y bf16.
 * direction +1: forward rotation; -1: the inverse (backward). y may equal x (in place). */
tsl_status tsl_rope(const void* d_x, const int32_t* d_positions, const float* d_inv_freq, int64_t T, int32_t n_heads,
                    int32_t head_dim, int32_t direction, void* d_y);

/* ---- SwiGLU ----------------------------------------------------------------------------- */
tsl_status tsl_swiglu_fwd(const void* d_gate, const void* d_up, uint64_t n, void* d_h);
tsl_status tsl_swiglu_bwd(const void* d_dh, const void* d_gate, const void* d_up, uint64_t n, void* d_dgate,
                          void* d_dup);

/* ---- causal attention, GQA, packed sequences (FlashAttention-2 style) --------------------- */
/* q bf16 [T, Hq*D], k/v bf16 [T, Hkv*D], cu_seqlens i32 [B+1]; o bf16 [T, Hq*D], lse f32 [Hq, T].
 * max_seqlen: the longest sequence (bounds the grid). D in {16, 32, 64, 128, 256}. */
tsl_status tsl_attention_fwd(const void* d_q, const void* d_k, const void* d_v, const int32_t* d_cu_seqlens,
                             int32_t num_seqs, int32_t max_seqlen, int64_t T, int32_t Hq, int32_t Hkv, int32_t D,
                             float scale, void* d_o, float* d_lse);
tsl_status tsl_attention_bwd(const void* d_do, const void* d_q, const void* d_k, const void* d_v, const void* d_o,
                             const float* d_lse, const int32_t* d_cu_seqlens, int32_t num_seqs, int32_t max_seqlen,
                             int64_t T, int32_t Hq, int32_t Hkv, int32_t D, float scale, void* d_dq, void* d_dk,
                             void* d_dv);

/* ---- linear: dense bf16 base + LoRA ------------------------------------------------------ */
/* y[T,out] = x·Wᵀ (+bias) + scale·(x·aᵀ)·bᵀ. x, W, y bf16; a f32 [r,in], b f32 [out,r] (null: no
 * LoRA); bias any-float [out] or null. d_xa (bf16 [T,r], optional) receives x·aᵀ. */
tsl_status tsl_linear_fwd(const void* d_x, const void* d_w, const void* d_bias, int32_t bias_dtype, const float* d_a,
                          const float* d_b, float scale, int64_t T, int64_t in_f, int64_t out_f, int32_t r, void* d_y);
/* dx (bf16, nullable) = dy·W + scale·(dy·b)·a; da += scale·(dy·b)ᵀ·x; db += scale·dyᵀ·(x·aᵀ)
 * (da, db f32, each nullable). */
tsl_status tsl_linear_bwd(const void* d_dy, const void* d_x, const void* d_w, const float* d_a, const float* d_b,
                          float scale, int64_t T, int64_t in_f, int64_t out_f, int32_t r, void* d_dx, float* d_da,
                          float* d_db);
/* Grouped LoRA linears for training: projections that share x (q/k/v, gate/up), 1..8 adapters per
 * group. Host arrays of count entries: h_a (device pointers of a_i f32 [r_i, in_f]), h_r (r_i > 0),
 * h_da (device pointers of dA_i f32 [r_i, in_f], 0 = frozen adapter). The group's xa = x·A_allᵀ and
 * g (g_i = scale_i·dy_i·b_i) are bf16 [T, Σr], adapter i's columns starting at col0_i = Σ_{j<i} r_j:
 * the per-matrix calls take d_xa + col0_i (and d_g + col0_i) with row stride ld = Σr.
 * xa = x·A_allᵀ, A_all = the a_i stacked [Σr, in_f]: one pass over x (bf16 [T, in_f]) for the group. */
tsl_status tsl_lora_down_group(int32_t count, const uint64_t* h_a, const int32_t* h_r, const void* d_x, int64_t T,
                               int64_t in_f, void* d_xa);
/* y = x·Wᵀ (+bias) (+ scale·xa·bᵀ) as tsl_linear_fwd, xa [T, r] read in place (row stride ld_xa >= r)
 * from tsl_lora_down_group's output; d_xa and d_b null: no LoRA. */
tsl_status tsl_linear_fwd_xa(const void* d_x, const void* d_w, const void* d_bias, int32_t bias_dtype, const void* d_xa,
                             int64_t ld_xa, const float* d_b, float scale, int64_t T, int64_t in_f, int64_t out_f,
                             int32_t r, void* d_y);
/* One projection's share of the group backward; every output is nullable:
 *   dx = dy·W + dx_beta·dx (dx_beta 0 for the group's first writer, 1 after; bf16 [T, in_f]),
 *   g (bf16 [T, r], row stride ld) = scale·dy·b,  db (f32 [out_f, r]) += scale·dyᵀ·xa (xa [T, r],
 *   row stride ld). */
tsl_status tsl_linear_bwd_xa(const void* d_dy, const void* d_w, const float* d_b, float scale, int64_t T, int64_t in_f,
                             int64_t out_f, int32_t r, const void* d_xa, int64_t ld, float dx_beta, void* d_dx, void* d_g,
                             float* d_db);
/* After every projection wrote its columns of g [T, Σr]: dA_i += (g_iᵀ·x) for the adapters with a dA
 * (gᵀ·x as one GEMM: one pass over x for the group), and dx (bf16, nullable) += g·A_all = Σ_i g_i·a_i
 * (one GEMM, K = Σr). With dx every adapter's columns of g must be written; without it, those of the
 * adapters with a dA. */
tsl_status tsl_lora_up_group_bwd(int32_t count, const uint64_t* h_a, const int32_t* h_r, const uint64_t* h_da,
                                 const void* d_x, const void* d_g, int64_t T, int64_t in_f, void* d_dx);

/* ---- cross-entropy fused with the LM head ------------------------------------------------ */
/* h bf16 [T,H], head bf16 [V,H], labels i32 [T] (-100 ignored). Logits chunk_tokens rows at a time.
 * Forward: loss_sum f32 [1] (device) = Σ lse[t] - logit[t,label]; lse f32 [T] (0 for ignored tokens). */
tsl_status tsl_ce_lmhead_fwd(const void* d_h, const void* d_head, const int32_t* d_labels, int64_t T, int64_t H,
                             int64_t V, int64_t chunk_tokens, float* d_loss_sum, float* d_lse);
/* dh bf16 [T,H] = grad_scale · (softmax − onehot) · head, 0 for ignored tokens. */
tsl_status tsl_ce_lmhead_bwd(const void* d_h, const void* d_head, const int32_t* d_labels, const float* d_lse,
                             int64_t T, int64_t H, int64_t V, int64_t chunk_tokens, float grad_scale, void* d_dh);
/* Both at once, for training: loss_sum as tsl_ce_lmhead_fwd and dh as tsl_ce_lmhead_bwd, each chunk's
 * logits formed once (no lse kept, no second pass over the LM head). */
tsl_status tsl_ce_lmhead_fused(const void* d_h, const void* d_head, const int32_t* d_labels, int64_t T, int64_t H,
                               int64_t V, int64_t chunk_tokens, float grad_scale, float* d_loss_sum, void* d_dh);

/* ---- AdamW (multi-tensor, f32, PyTorch semantics) --------------------------------------- */
tsl_status tsl_adamw(float* const* d_params, const float* const* d_grads, float* const* d_m, float* const* d_v,
                     const uint64_t* sizes, int32_t count, float lr, float beta1, float beta2, float eps,
                     float weight_decay, int32_t step);

/* ---- generation: KV cache and decode (lib/infer) ------------------------------------------ */
/* KV storage is bf16 rows of width = Hkv*D, grouped in blocks of block_size positions. A layer's
 * storage is a list of up to TSL_MAX_KV_SEGMENTS segments (host arrays of device pointers
 * h_k_segs/h_v_segs, each segment h_seg_blocks[s] blocks); block ids number the blocks of the
 * segments laid end to end. Global slot = block id * block_size + offset in the block. */
#define TSL_MAX_KV_SEGMENTS 64
/* Row slots[t] of the segments receives k[t], v[t] (k/v [T, width] of src_dtype, converted to bf16). */
tsl_status tsl_kv_cache_write(const uint64_t* h_k_segs, const uint64_t* h_v_segs, const int32_t* h_seg_blocks,
                              int32_t num_segs, int32_t block_size, const void* d_k, const void* d_v, int32_t src_dtype,
                              const int32_t* d_slots, int64_t T, int32_t width);
/* Causal GQA attention of q bf16 [T, Hq*D] over the cache (PagedAttention; FlashDecoding's split of
 * long contexts along the sequence, merged by log-sum-exp). Sequence b owns query rows
 * d_cu_q[b]..d_cu_q[b+1]-1, the last of its d_context_lens[b] positions; d_block_tables i32
 * [B, max_blocks]. max_context_len bounds the split. D in {16, 32, 64, 128, 256}. o bf16 [T, Hq*D]. */
tsl_status tsl_paged_attention(const void* d_q, const uint64_t* h_k_segs, const uint64_t* h_v_segs,
                               const int32_t* h_seg_blocks, int32_t num_segs, int32_t block_size,
                               const int32_t* d_block_tables, int32_t max_blocks, const int32_t* d_cu_q,
                               const int32_t* d_context_lens, int32_t B, int64_t T, int32_t max_context_len, int32_t Hq,
                               int32_t Hkv, int32_t D, float scale, void* d_o);
/* out[r] = the index of row r's largest element (x [rows, cols], any float dtype; ties: the lowest
 * index; NaN never wins, a row of NaN gives 0): greedy decoding's pick, on the device. */
tsl_status tsl_argmax_rows(const void* d_x, int32_t dtype, int64_t rows, int64_t cols, int32_t* d_out);
/* Batch-1 decode matrix-vector product with a 4-bit NF4 weight W [out_f, in_f] (bitsandbytes layout,
 * absmax f32 or double-quantized as in tsl_nf4_dequantize), reading the packed weights once:
 *   y[o] = Σ_i W[o,i] x[i] (+ bias[o]) (+ scale · Σ_j (x·aᵀ)[j] b[o,j]).
 * x, y bf16; bias any float or null; LoRA a f32 [r, in_f], b f32 [out_f, r] or null.
 * in_f must be a multiple of 64; blocksize a power of two ≥ 32, nested_blocksize a power of two. */
tsl_status tsl_nf4_gemv(const uint8_t* d_packed, int64_t out_f, int64_t in_f, int32_t blocksize, const float* d_absmax_f32,
                        const uint8_t* d_absmax_q, const float* d_nested_absmax, const float* d_nested_code,
                        int32_t nested_blocksize, float nested_offset, const void* d_x, const void* d_bias,
                        int32_t bias_dtype, const float* d_a, const float* d_b, float scale, int32_t r, void* d_y);
/* Up to 3 NF4 matrices that share x (q/k/v, gate/up) in one launch: for each i < count,
 *   y_i = W_i x (+ bias_i) (+ scale_i · (x·a_iᵀ)·b_iᵀ), each as tsl_nf4_gemv computes it. Host arrays of
 * count entries: device pointers as u64 (0 = none: f32 absmax of double-quantized matrices, bias,
 * LoRA a and b), out_f, nested blocksize / offset, LoRA scale and r (the last four arrays may be null
 * when unused). The matrices share in_f, blocksize, x, the bias dtype, and whether absmax is
 * double-quantized. */
tsl_status tsl_nf4_gemv_group(int32_t count, const uint64_t* h_packed, const int64_t* h_out_f, int64_t in_f,
                              int32_t blocksize, const uint64_t* h_absmax_f32, const uint64_t* h_absmax_q,
                              const uint64_t* h_nested_absmax, const uint64_t* h_nested_code,
                              const int32_t* h_nested_blocksize, const float* h_nested_offset, const void* d_x,
                              const uint64_t* h_bias, int32_t bias_dtype, const uint64_t* h_a, const uint64_t* h_b,
                              const float* h_scale, const int32_t* h_r, const uint64_t* h_y);

/* ---- NF4 GEMM for small batches (batched decode) ------------------------------------------ */
/* y[T, out_f] = x[T, in_f] · Wᵀ (+ bias) (+ scale · (x·aᵀ)·bᵀ) for 1 <= T <= 16, W a 4-bit NF4 weight
 * [out_f, in_f] in the bitsandbytes layout (absmax f32 or double-quantized as in tsl_nf4_dequantize),
 * read once on tensor cores (sm_80+) instead of dequantized. x, y bf16 row-major; bias any float or
 * null; LoRA a f32 [r, in_f], b f32 [out_f, r] or null. in_f a multiple of 64; blocksize a power of
 * two >= 64; nested_blocksize a power of two; packed and x 16-byte aligned, absmax arrays 4-byte. */
tsl_status tsl_nf4_gemm_small(const uint8_t* d_packed, int64_t out_f, int64_t in_f, int32_t blocksize,
                              const float* d_absmax_f32, const uint8_t* d_absmax_q, const float* d_nested_absmax,
                              const float* d_nested_code, int32_t nested_blocksize, float nested_offset,
                              const void* d_x, int64_t T, const void* d_bias, int32_t bias_dtype, const float* d_a,
                              const float* d_b, float scale, int32_t r, void* d_y);

#ifdef __cplusplus
}
#endif
#endif
