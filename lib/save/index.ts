// Saving: merged checkpoints (16-bit or bitsandbytes 4-bit) and PEFT adapters, atomic and within
// memory and disk limits. %save_merged calls saveMerged; saveLora is its adapters-only twin.
export { saveMerged } from "./save-merged.js";
export { saveLora, peftLoraConfig } from "./save-lora.js";
export { recoverInterruptedSaves } from "./staged-directory.js";
export type { SavableModel } from "./savable-model.js";
export {
  DEFAULT_MAXIMUM_MEMORY_USAGE, MAXIMUM_MEMORY_USAGE_LIMIT, SAVE_METHODS, resolveSaveOptions,
  type SaveMethod, type SaveOptions, type SaveProgress, type SaveSummary, type SerializationPath,
} from "./save-options.js";
