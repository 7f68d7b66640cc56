// What a magic is: a name, its help, typed options and positionals, and a `run` that calls lib/.
import type { DisplayHandle, DisplayOptions } from "../display.js";

export type OptionType = "string" | "number" | "integer" | "boolean";
export type OptionValue = string | number | boolean;

export interface MagicOption {
  name: string;
  type: OptionType;
  help: string;
  default?: OptionValue;
  /** Allowed values (for string options). */
  choices?: readonly string[];
}

export interface MagicPositional {
  name: string;
  help: string;
  /** Without a value the magic fails with a usage error (default: optional). */
  required?: boolean;
}

/** Parsed arguments: each option and positional by name; options absent from the line get their default. */
export type MagicArgs = Record<string, OptionValue | undefined>;

export interface MagicContext {
  /** Show a value (its mime bundle) in the cell's output; the handle updates it in place. */
  display(value: unknown, options?: DisplayOptions): DisplayHandle;
  updateDisplay(displayId: string, value: unknown): void;
  clearOutput(options?: { wait?: boolean }): void;
  stdout(text: string): void;
  stderr(text: string): void;
  /** Aborted when the user interrupts the cell: pass it to long lib/ calls. */
  signal: AbortSignal;
  /** State that lives as long as the kernel (a loaded model, a trainer), shared by all magics. */
  state: Map<string, unknown>;
  /** The body of a cell magic (the cell after its %%name line); undefined for line magics. */
  body: string | undefined;
  /** The notebook's directory. */
  cwd: string;
}

export interface MagicDefinition {
  name: string;
  /** "line": %name, "cell": %%name, "both". */
  kind: "line" | "cell" | "both";
  /** One line for %lsmagic. */
  summary: string;
  /** More text for %help NAME (examples, the lib/ function it calls). */
  help?: string;
  options?: readonly MagicOption[];
  positionals?: readonly MagicPositional[];
  /** TypeScript type of the result when bound (`x = %name ...`), for completion in later cells. */
  resultType?: string;
  /** The value returned becomes the cell's result, or the bound variable's value. */
  run(args: MagicArgs, context: MagicContext): unknown;
}

/** A mistake in how a magic was called: shown as one line, the kernel carries on. */
export class MagicUsageError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "UsageError";
  }
}
