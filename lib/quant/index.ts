// 4-bit NormalFloat weights and bitsandbytes' checkpoint format.
export * from "./bnb-format.js";
export * from "./dynamic-map.js";
export * from "./load-nf4.js";
export * from "./nf4.js";
