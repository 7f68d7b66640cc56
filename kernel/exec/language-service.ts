// Type-aware completion and inspection. The TypeScript compiler (9 MB) is loaded on first use
// or when the kernel is idle after start, never on the start-up path. The language service
// sees one virtual module: the declarations of earlier cells (the latest declaration of each
// name wins), then the cell being edited.
import { createRequire } from "node:module";
import { join } from "node:path";
import type * as TS from "typescript";
import { projectRoot } from "../../lib/paths.js";
import { magicLinesForTypes, parseCellMagic } from "../magics/cell-syntax.js";
import { CELL_GLOBALS_DTS } from "./cell-globals.js";

interface CellDeclarations {
  statements: Array<{ text: string; names: string[]; keep: boolean }>;
}

export interface Completion {
  matches: string[];
  /** UTF-16 offsets in the cell of the text the matches replace. */
  start: number;
  end: number;
  types: Array<{ text: string; type: string }>;
}

export class CellLanguageService {
  private ts: typeof TS | undefined;
  private service: TS.LanguageService | undefined;
  private readonly cells: string[] = [];
  private parsed: CellDeclarations[] = [];
  private text = "";
  private version = 0;
  private readonly cellFile = join(process.cwd(), "__tsloth_cells__.ts");
  private readonly globalsFile = join(process.cwd(), "__tsloth_globals__.d.ts");

  /** Remembers a cell that ran, so later cells can complete the names it declared. */
  recordCell(source: string): void {
    if (parseCellMagic(source)) return;
    this.cells.push(magicLinesForTypes(source));
    if (this.ts) this.parsed.push(this.parse(this.cells[this.cells.length - 1]));
  }

  /** Loads the compiler and builds the program once, so the first real request is quick. */
  warm(): void {
    this.complete("", 0);
  }

  complete(code: string, cursor: number): Completion {
    const { service, offset } = this.prepare(code);
    const word = /[\w$]*$/.exec(code.slice(0, cursor))![0];
    const info = service.getCompletionsAtPosition(this.cellFile, offset + cursor, { includeCompletionsWithInsertText: false });
    const entries = (info?.entries ?? [])
      .filter((e) => e.name.startsWith(word) && !e.name.startsWith("__tsloth"))
      .sort((a, b) => a.sortText.localeCompare(b.sortText) || a.name.localeCompare(b.name))
      .slice(0, 500);
    return {
      matches: entries.map((e) => e.name),
      start: cursor - word.length,
      end: cursor,
      types: entries.map((e) => ({ text: e.name, type: e.kind })),
    };
  }

  /** The type and documentation of the name at (or just before) the cursor. */
  inspect(code: string, cursor: number): string | undefined {
    const { service, offset } = this.prepare(code);
    const ts = this.ts!;
    for (const at of [cursor, cursor - 1]) {
      if (at < 0) continue;
      const info = service.getQuickInfoAtPosition(this.cellFile, offset + at);
      if (!info) continue;
      const signature = ts.displayPartsToString(info.displayParts);
      const docs = ts.displayPartsToString(info.documentation);
      return docs ? `${signature}\n\n${docs}` : signature;
    }
    return undefined;
  }

  private load(): typeof TS {
    if (!this.ts) {
      this.ts = createRequire(import.meta.url)("typescript") as typeof TS;
      this.parsed = this.cells.map((c) => this.parse(c));
    }
    return this.ts;
  }

  private parse(source: string): CellDeclarations {
    const ts = this.ts!;
    const file = ts.createSourceFile("cell.ts", source, ts.ScriptTarget.ES2022, true);
    return {
      statements: file.statements.map((s) => {
        const names = declaredNames(ts, s);
        const keep = names.length > 0 || ts.isImportDeclaration(s) || ts.isInterfaceDeclaration(s) || ts.isTypeAliasDeclaration(s);
        return { text: s.getFullText(file), names, keep };
      }),
    };
  }

  private prepare(code: string): { service: TS.LanguageService; offset: number } {
    const ts = this.load();
    const current = magicLinesForTypes(code);
    const shadowed = new Set(this.parse(current).statements.flatMap((s) => s.names));
    const kept: string[] = [];
    for (let c = this.parsed.length - 1; c >= 0; c--) {
      const texts: string[] = [];
      for (const s of [...this.parsed[c].statements].reverse()) {
        if (!s.keep) continue;
        if (s.names.length > 0 && s.names.every((n) => shadowed.has(n))) continue;
        texts.unshift(s.text);
        for (const n of s.names) shadowed.add(n);
      }
      kept.unshift(texts.join(""));
    }
    const prefix = kept.join("\n") + "\nexport {};\n";
    this.text = prefix + current;
    this.version++;
    this.service ??= this.create(ts);
    return { service: this.service, offset: prefix.length };
  }

  private create(ts: typeof TS): TS.LanguageService {
    const root = projectRoot();
    const options: TS.CompilerOptions = {
      target: ts.ScriptTarget.ES2022,
      module: ts.ModuleKind.ESNext,
      moduleResolution: ts.ModuleResolutionKind.Bundler,
      lib: ["lib.es2023.d.ts"],
      types: ["node"],
      typeRoots: [join(process.cwd(), "node_modules", "@types"), join(root, "node_modules", "@types")],
      paths: { tsloth: [join(root, "lib", "index.ts"), join(root, "dist", "lib", "index.d.ts")] },
      strict: true,
      esModuleInterop: true,
      skipLibCheck: true,
      allowJs: true,
      noEmit: true,
    };
    const host: TS.LanguageServiceHost = {
      getScriptFileNames: () => [this.globalsFile, this.cellFile],
      getScriptVersion: (f) => (f === this.cellFile ? String(this.version) : "0"),
      getScriptSnapshot: (f) => {
        if (f === this.cellFile) return ts.ScriptSnapshot.fromString(this.text);
        if (f === this.globalsFile) return ts.ScriptSnapshot.fromString(CELL_GLOBALS_DTS);
        const text = ts.sys.readFile(f);
        return text === undefined ? undefined : ts.ScriptSnapshot.fromString(text);
      },
      getCurrentDirectory: () => process.cwd(),
      getCompilationSettings: () => options,
      getDefaultLibFileName: (o) => ts.getDefaultLibFilePath(o),
      fileExists: (f) => f === this.cellFile || f === this.globalsFile || ts.sys.fileExists(f),
      readFile: (f) => (f === this.cellFile ? this.text : f === this.globalsFile ? CELL_GLOBALS_DTS : ts.sys.readFile(f)),
      readDirectory: ts.sys.readDirectory,
      directoryExists: ts.sys.directoryExists,
      getDirectories: ts.sys.getDirectories,
    };
    return ts.createLanguageService(host, ts.createDocumentRegistry());
  }
}

function declaredNames(ts: typeof TS, s: TS.Statement): string[] {
  const names: string[] = [];
  const collect = (n: TS.BindingName) => {
    if (ts.isIdentifier(n)) names.push(n.text);
    else for (const e of n.elements) if (!ts.isOmittedExpression(e)) collect(e.name);
  };
  if (ts.isVariableStatement(s)) for (const d of s.declarationList.declarations) collect(d.name);
  else if ((ts.isFunctionDeclaration(s) || ts.isClassDeclaration(s) || ts.isEnumDeclaration(s) || ts.isInterfaceDeclaration(s) || ts.isTypeAliasDeclaration(s)) && s.name) {
    names.push(s.name.text);
  }
  return names;
}
