// bitsandbytes' 4-bit checkpoint format (what transformers saves for load_in_4bit models): per
// quantized weight W the keys W (packed uint8, shape [ceil(n/2), 1]), W.absmax, W.quant_map,
// W.nested_absmax, W.nested_quant_map and W.quant_state.bitsandbytes__nf4, a uint8 tensor holding
// the JSON of the non-tensor fields (bitsandbytes QuantState.as_dict(packed=True)).
import type { SafetensorsReader } from "../formats/safetensors-reader.js";
import type { TensorDtype } from "../formats/dtype.js";
import { dequantizeNestedAbsmax, type Nf4Dtype, type Nf4Tensor } from "./nf4.js";

export const NF4_QUANT_STATE_SUFFIX = ".quant_state.bitsandbytes__nf4";
const FP4_QUANT_STATE_SUFFIX = ".quant_state.bitsandbytes__fp4";

export interface BnbTensor {
  name: string;
  dtype: TensorDtype;
  shape: number[];
  data: Uint8Array;
}

interface QuantStateJson {
  quant_type: string;
  blocksize: number;
  dtype: string;
  shape: number[];
  nested_blocksize?: number;
  nested_dtype?: string;
  nested_offset?: number;
}

/** True when the checkpoint holds bitsandbytes 4-bit weights. */
export function isBnb4bitCheckpoint(reader: SafetensorsReader): boolean {
  return reader.names().some((n) => n.endsWith(NF4_QUANT_STATE_SUFFIX) || n.endsWith(FP4_QUANT_STATE_SUFFIX));
}

/** Names of the 4-bit weights ("model.layers.0.self_attn.q_proj.weight", ...). */
export function bnb4bitWeightNames(reader: SafetensorsReader): string[] {
  return reader.names().filter((n) => n.endsWith(NF4_QUANT_STATE_SUFFIX)).map((n) => n.slice(0, -NF4_QUANT_STATE_SUFFIX.length));
}

/** Names of the companion tensors of a 4-bit weight (so a loader can skip them when listing weights). */
export function isBnbCompanionTensor(name: string): boolean {
  return /\.(absmax|quant_map|nested_absmax|nested_quant_map|quant_state\.bitsandbytes__(nf4|fp4))$/.test(name);
}

function asF32(reader: SafetensorsReader, key: string, source: string): Float32Array {
  const info = reader.info(key);
  if (info.dtype !== "F32") throw new Error(`tsloth: ${source}: tensor "${key}" should be F32, found ${info.dtype}`);
  return reader.readF32(key);
}

/** Reads one pre-quantized NF4 weight; the absmax returned is the one dequantization multiplies by. */
export function readBnb4bit(reader: SafetensorsReader, name: string): Nf4Tensor {
  if (reader.has(name + FP4_QUANT_STATE_SUFFIX))
    throw new Error(`tsloth: "${name}" is bitsandbytes FP4; tsloth loads NF4 only. Re-quantize with bnb_4bit_quant_type="nf4" or load the 16-bit model.`);
  const stateKey = name + NF4_QUANT_STATE_SUFFIX;
  if (!reader.has(stateKey)) throw new Error(`tsloth: "${name}" is not a bitsandbytes 4-bit weight (no "${stateKey}" tensor)`);
  const source = reader.info(stateKey).file;
  let state: QuantStateJson;
  try {
    state = JSON.parse(new TextDecoder().decode(reader.readRaw(stateKey)));
  } catch (e) {
    throw new Error(`tsloth: ${source}: "${stateKey}" is not valid JSON (${(e as Error).message})`);
  }
  if (state.quant_type !== "nf4") throw new Error(`tsloth: ${source}: "${name}" has quant_type ${state.quant_type}; expected nf4`);
  const shape = state.shape;
  const n = shape.reduce((a, b) => a * b, 1);
  const packedInfo = reader.info(name);
  if (packedInfo.dtype !== "U8" || packedInfo.byteLength !== Math.ceil(n / 2))
    throw new Error(`tsloth: ${source}: "${name}" should be ${Math.ceil(n / 2)} U8 bytes for shape ${JSON.stringify(shape)}, found ${packedInfo.byteLength} ${packedInfo.dtype}`);
  const blocks = Math.ceil(n / state.blocksize);
  const quantMap = asF32(reader, name + ".quant_map", source);
  const absmaxKey = name + ".absmax";
  const absmaxInfo = reader.info(absmaxKey);
  if (absmaxInfo.shape.reduce((a, b) => a * b, 1) !== blocks)
    throw new Error(`tsloth: ${source}: "${absmaxKey}" should hold ${blocks} values (one per block of ${state.blocksize}), found shape ${JSON.stringify(absmaxInfo.shape)}`);
  const t: Nf4Tensor = {
    shape: [...shape],
    packed: reader.readRaw(name),
    blocksize: state.blocksize,
    absmax: new Float32Array(0),
    quantMap,
    dtype: (["bfloat16", "float16", "float32"].includes(state.dtype) ? state.dtype : "bfloat16") as Nf4Dtype,
  };
  if (reader.has(name + ".nested_absmax")) {
    if (absmaxInfo.dtype !== "U8") throw new Error(`tsloth: ${source}: "${absmaxKey}" of a double-quantized weight should be U8, found ${absmaxInfo.dtype}`);
    t.nested = {
      quantizedAbsmax: reader.readRaw(absmaxKey),
      nestedAbsmax: asF32(reader, name + ".nested_absmax", source),
      nestedQuantMap: asF32(reader, name + ".nested_quant_map", source),
      nestedBlocksize: state.nested_blocksize ?? 256,
      offset: state.nested_offset ?? 0,
    };
    t.absmax = dequantizeNestedAbsmax(t.nested);
  } else {
    t.absmax = asF32(reader, absmaxKey, source);
  }
  return t;
}

/** Python's repr of a float (json.dumps writes floats this way), so our JSON matches bitsandbytes'. */
function pythonFloat(x: number): string {
  if (!Number.isFinite(x)) return Number.isNaN(x) ? "NaN" : x > 0 ? "Infinity" : "-Infinity";
  if (x === 0) return Object.is(x, -0) ? "-0.0" : "0.0";
  const exp = Math.floor(Math.log10(Math.abs(x)));
  if (exp < -4 || exp >= 16) {
    const [mant, e] = x.toExponential().split("e") as [string, string];
    const en = Number(e);
    return `${mant}e${en < 0 ? "-" : "+"}${String(Math.abs(en)).padStart(2, "0")}`;
  }
  const s = String(x);
  return /[.e]/.test(s) ? s : s + ".0";
}

/** The JSON bitsandbytes packs into the quant_state tensor (json.dumps with default separators). */
export function bnbQuantStateJson(t: Nf4Tensor): string {
  const parts = [
    `"quant_type": "nf4"`,
    `"blocksize": ${t.blocksize}`,
    `"dtype": "${t.dtype}"`,
    `"shape": [${t.shape.join(", ")}]`,
  ];
  if (t.nested) {
    parts.push(`"nested_blocksize": ${t.nested.nestedBlocksize}`, `"nested_dtype": "float32"`, `"nested_offset": ${pythonFloat(t.nested.offset)}`);
  }
  return `{${parts.join(", ")}}`;
}

function f32Bytes(a: Float32Array): Uint8Array {
  return new Uint8Array(a.buffer.slice(a.byteOffset, a.byteOffset + a.byteLength));
}

/** The tensors that store one NF4 weight in bitsandbytes' format, in the order transformers writes them. */
export function bnb4bitTensors(name: string, t: Nf4Tensor): BnbTensor[] {
  const out: BnbTensor[] = [{ name, dtype: "U8", shape: [t.packed.length, 1], data: t.packed }];
  if (t.nested) {
    out.push({ name: `${name}.absmax`, dtype: "U8", shape: [t.nested.quantizedAbsmax.length], data: t.nested.quantizedAbsmax });
  } else {
    out.push({ name: `${name}.absmax`, dtype: "F32", shape: [t.absmax.length], data: f32Bytes(t.absmax) });
  }
  out.push({ name: `${name}.quant_map`, dtype: "F32", shape: [t.quantMap.length], data: f32Bytes(t.quantMap) });
  if (t.nested) {
    out.push({ name: `${name}.nested_absmax`, dtype: "F32", shape: [t.nested.nestedAbsmax.length], data: f32Bytes(t.nested.nestedAbsmax) });
    out.push({ name: `${name}.nested_quant_map`, dtype: "F32", shape: [t.nested.nestedQuantMap.length], data: f32Bytes(t.nested.nestedQuantMap) });
  }
  const json = new TextEncoder().encode(bnbQuantStateJson(t));
  out.push({ name: name + NF4_QUANT_STATE_SUFFIX, dtype: "U8", shape: [json.length], data: json });
  return out;
}
