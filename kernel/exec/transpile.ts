// TypeScript -> JavaScript for one cell with esbuild (loads in milliseconds; the TypeScript
// compiler is kept for completion and inspection). Type errors never block execution.
import { stop, transformSync, type TransformFailure, type TransformOptions } from "esbuild";

export interface Transpiled {
  js: string;
  sourceMap: string;
}

export class CellSyntaxError extends Error {
  constructor(
    message: string,
    readonly line: number,
    readonly column: number,
    readonly lineText: string,
  ) {
    super(message);
    this.name = "SyntaxError";
  }
}

function transform(source: string, options: TransformOptions) {
  try {
    return transformSync(source, options);
  } catch (e) {
    if ((e as TransformFailure).errors?.length) throw e;
    // esbuild's service process shares the kernel's process group, so a SIGINT sent to the
    // group (interrupt_mode "signal") ends it too; stop() forgets it and the retry starts anew.
    void stop();
    return transformSync(source, options);
  }
}

export function transpileCell(source: string, fileName: string): Transpiled {
  try {
    const out = transform(source, {
      loader: "ts",
      format: "esm",
      target: "es2022",
      sourcemap: "external",
      sourcefile: fileName,
      // Keep imports whose names are only used by later cells.
      tsconfigRaw: { compilerOptions: { verbatimModuleSyntax: true } },
    });
    return { js: out.code, sourceMap: out.map };
  } catch (e) {
    const failure = e as TransformFailure;
    const first = failure.errors?.[0];
    if (!first) throw e;
    const loc = first.location;
    throw new CellSyntaxError(first.text, loc?.line ?? 1, (loc?.column ?? 0) + 1, loc?.lineText ?? "");
  }
}

/** For is_complete: "complete", "incomplete" (the cell stops mid-construct) or "invalid". */
export function completeness(source: string): "complete" | "incomplete" | "invalid" {
  try {
    transpileCell(source, "is-complete.ts");
    return "complete";
  } catch (e) {
    if (!(e instanceof CellSyntaxError)) return "invalid";
    return /end of file|Unterminated/i.test(e.message) ? "incomplete" : "invalid";
  }
}
