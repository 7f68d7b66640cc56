// What cells see besides their own declarations: display helpers, input(), require, the
// abort signal of the running cell, comms, and the runtime hooks rewritten cells call.
import { clearOutput, display, updateDisplay } from "../display.js";
import { MIME_BUNDLE } from "../mime.js";
import type { MagicRunner } from "../magics/run.js";
import { kernelAbortSignal } from "./interrupt.js";
import { importFromNotebook, requireFromNotebook } from "./modules.js";
import { RUNTIME } from "./persist-rewrite.js";

export interface CellGlobalServices {
  magics: MagicRunner;
  input(prompt?: string, options?: { password?: boolean }): Promise<string>;
  comms: unknown;
}

export function installCellGlobals(services: CellGlobalServices): void {
  const g = globalThis as Record<string, unknown>;
  g[RUNTIME] = {
    import: (specifier: string) => importFromNotebook(specifier),
    named: (fn: unknown, name: string) => {
      Object.defineProperty(fn, "name", { value: name });
      return fn;
    },
    magic: (name: string, args: string) => services.magics.runLine(name, args),
    magicHelp: (name: string) => services.magics.help(name),
  };
  Object.assign(g, {
    display,
    updateDisplay,
    clearOutput,
    input: services.input,
    comms: services.comms,
    MIME_BUNDLE,
  });
  Object.defineProperty(g, "require", { get: () => requireFromNotebook(), configurable: true });
  Object.defineProperty(g, "abortSignal", { get: kernelAbortSignal, configurable: true });
}

/** Declarations of those globals for the language service. */
export const CELL_GLOBALS_DTS = `
declare function display(value: unknown, options?: { displayId?: string; metadata?: Record<string, unknown> }): { readonly displayId: string; update(value: unknown): void };
declare function updateDisplay(displayId: string, value: unknown, metadata?: Record<string, unknown>): void;
declare function clearOutput(options?: { wait?: boolean }): void;
/** Asks the frontend for a line of text (input_request on stdin). */
declare function input(prompt?: string, options?: { password?: boolean }): Promise<string>;
/** Aborted when the running cell is interrupted; pass it to long tsloth calls. */
declare const abortSignal: AbortSignal;
/** Objects may define [MIME_BUNDLE]() returning { "text/html": ..., ... } to choose how they display. */
declare const MIME_BUNDLE: unique symbol;
declare const comms: {
  registerTarget(name: string, onOpen: (comm: Comm, data: unknown) => void): void;
  open(targetName: string, data?: unknown): Comm;
};
interface Comm {
  readonly id: string;
  readonly targetName: string;
  send(data: unknown): void;
  close(data?: unknown): void;
  onMsg(handler: (data: unknown) => void): void;
  onClose(handler: (data: unknown) => void): void;
}
declare var require: NodeJS.Require;
`;
