// The CUDA backend's public surface: availability probe, backend choice, the backend, its errors.
export { chooseBackend, cudaAvailable, type BackendChoice, type CudaAvailability } from "./available.js";
export { CudaBackend } from "./backend.js";
export { CudaError, cudaLibraryPath } from "./native.js";
