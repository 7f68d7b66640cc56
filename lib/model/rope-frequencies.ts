// RoPE inverse frequencies as Hugging Face computes them (float32), with Llama 3.1's frequency-
// dependent scaling ("llama3" rope_type: transformers' _compute_llama3_parameters).
export type RopeScalingSpec =
  | { type: "llama3"; factor: number; lowFreqFactor: number; highFreqFactor: number; originalMaxPositionEmbeddings: number }
  | { type: "linear"; factor: number };

export function ropeInverseFrequencies(headDim: number, theta: number, scaling: RopeScalingSpec | null): Float32Array {
  const half = headDim / 2;
  const inv = new Float32Array(half);
  for (let i = 0; i < half; i++) inv[i] = 1 / Math.fround(Math.pow(theta, Math.fround((2 * i) / headDim)));
  if (!scaling) return inv;
  if (scaling.type === "linear") {
    // Linear position interpolation (Chen et al. 2023): positions / factor ≡ inv_freq / factor.
    for (let i = 0; i < half; i++) inv[i] = inv[i] / scaling.factor;
    return inv;
  }
  const { factor, lowFreqFactor, highFreqFactor, originalMaxPositionEmbeddings: oldLen } = scaling;
  const lowFreqWavelen = oldLen / lowFreqFactor;
  const highFreqWavelen = oldLen / highFreqFactor;
  for (let i = 0; i < half; i++) {
    const wavelen = (2 * Math.PI) / inv[i];
    if (wavelen > lowFreqWavelen) inv[i] = inv[i] / factor;
    else if (wavelen >= highFreqWavelen) {
      const smooth = (oldLen / wavelen - lowFreqFactor) / (highFreqFactor - lowFreqFactor);
      inv[i] = (1 - smooth) * (inv[i] / factor) + smooth * inv[i];
    }
  }
  return inv;
}
