// One weight of a checkpoint as NF4, whatever the checkpoint holds: a bitsandbytes 4-bit weight is
// read as stored; a 16/32-bit weight is read alone and quantized, so a loader walking the model
// layer by layer never holds more than one 16-bit tensor.
import type { SafetensorsReader } from "../formats/safetensors-reader.js";
import { NF4_QUANT_STATE_SUFFIX, readBnb4bit } from "./bnb-format.js";
import { nf4Quantize, type Nf4Dtype, type Nf4QuantizeOptions, type Nf4Tensor } from "./nf4.js";

const DTYPE_OF: Record<string, Nf4Dtype> = { BF16: "bfloat16", F16: "float16", F32: "float32" };

export function loadNf4Weight(reader: SafetensorsReader, name: string, opts: Omit<Nf4QuantizeOptions, "dtype"> = {}): Nf4Tensor {
  if (reader.has(name + NF4_QUANT_STATE_SUFFIX)) return readBnb4bit(reader, name);
  const info = reader.info(name);
  const dtype = DTYPE_OF[info.dtype];
  if (!dtype) throw new Error(`tsloth: ${info.file}: tensor "${name}" is ${info.dtype}; only BF16, F16 and F32 weights can be quantized to NF4`);
  return nf4Quantize(reader.readF32(name), info.shape, { ...opts, dtype });
}
