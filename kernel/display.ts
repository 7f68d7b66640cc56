// The display API of cells and magics: display, updateDisplay (by display id), clearOutput.
// `display(value)` sends the value's mime bundle (see mime.ts); `display(bundle)` with an
// object whose keys are all mime types sends that bundle as is.
import { randomUUID } from "node:crypto";
import { isMimeBundle, mimeBundleOf, type MimeBundle } from "./mime.js";

export interface DisplayOptions {
  /** Name this output so that updateDisplay(displayId, ...) can replace it later. */
  displayId?: string;
  metadata?: Record<string, unknown>;
}

export interface DisplayHandle {
  readonly displayId: string;
  update(value: unknown, metadata?: Record<string, unknown>): void;
}

export type DisplayPublisher = (msgType: string, content: Record<string, unknown>) => void;

let publisher: DisplayPublisher = () => {
  throw new Error("display: no kernel is running in this process");
};

/** Called once by the kernel: where display messages go (iopub, parented to the running cell). */
export function setDisplayPublisher(p: DisplayPublisher): void {
  publisher = p;
}

const bundleOf = (value: unknown): MimeBundle => (isMimeBundle(value) ? value : mimeBundleOf(value));

export function display(value: unknown, options: DisplayOptions = {}): DisplayHandle {
  const displayId = options.displayId ?? randomUUID();
  publisher("display_data", { data: bundleOf(value), metadata: options.metadata ?? {}, transient: { display_id: displayId } });
  return { displayId, update: (v, metadata) => updateDisplay(displayId, v, metadata) };
}

export function updateDisplay(displayId: string, value: unknown, metadata: Record<string, unknown> = {}): void {
  publisher("update_display_data", { data: bundleOf(value), metadata, transient: { display_id: displayId } });
}

/** Clears the cell's output; with wait, only when the next output arrives (no flicker). */
export function clearOutput(options: { wait?: boolean } = {}): void {
  publisher("clear_output", { wait: options.wait === true });
}
