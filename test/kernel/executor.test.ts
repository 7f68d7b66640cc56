// The cell executor in-process: persistence, redeclaration, await, values, errors, interrupts.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { installCellGlobals } from "../../kernel/exec/cell-globals.js";
import { CellExecutor, type CellOutcome } from "../../kernel/exec/executor.js";
import { interruptRunningCell } from "../../kernel/exec/interrupt.js";
import { registerBuiltinMagics, registerMagic } from "../../kernel/magics/index.js";
import { MagicRunner } from "../../kernel/magics/run.js";

registerBuiltinMagics();
registerMagic({
  name: "echo_words",
  kind: "line",
  summary: "Returns its three arguments (tests only).",
  positionals: [{ name: "a", help: "" }, { name: "b", help: "" }, { name: "c", help: "" }],
  run: (args) => [args.a, args.b, args.c],
});
const out: string[] = [];
const magics = new MagicRunner((body) => ({
  display: () => ({ displayId: "d", update: () => undefined }),
  updateDisplay: () => undefined,
  clearOutput: () => undefined,
  stdout: (t) => out.push(t),
  stderr: (t) => out.push(t),
  signal: new AbortController().signal,
  state: new Map(),
  body,
  cwd: process.cwd(),
}));
installCellGlobals({ magics, input: async () => "", comms: {} });
const executor = new CellExecutor(magics);
let label = 0;
const run = (code: string) => executor.run(code, ++label);
const value = (o: CellOutcome) => {
  assert.equal(o.status, "ok", JSON.stringify(o));
  return o.status === "ok" ? o.value : undefined;
};

describe("cell executor", () => {
  it("keeps declarations across cells and lets later cells declare them again", async () => {
    const n = Math.floor(Math.random() * 1e6);
    value(await run(`const n1: number = ${n}\nlet [n2, { n3 }] = [n1 + 1, { n3: n1 + 2 }]\nclass K { v = n1 }\nenum Color { Red, Green }`));
    assert.equal(value(await run("n1 + n2 + n3 + new K().v + Color.Green")), 4 * n + 3 + 1);
    value(await run("const n1 = 'text'\nfunction n2() { return n1.length }"));
    assert.equal(value(await run("n2()")), 4);
  });

  it("a function redefined later is the one earlier functions call", async () => {
    value(await run("function inner() { return 1 }\nfunction outer() { return inner() * 10 }"));
    value(await run("function inner() { return 2 }"));
    assert.equal(value(await run("outer()")), 20);
    assert.equal(value(await run("outer.name")), "outer");
  });

  it("awaits at top level and returns the last expression only", async () => {
    const o = await run("const w = await new Promise<number>((r) => setTimeout(() => r(5), 10))\nw * 2");
    assert.equal(value(o), 10);
    const decl = await run("const onlyDeclared = 3");
    assert.ok(decl.status === "ok" && !decl.hasValue);
    assert.equal(value(await run("for (const i of [1, 2]) { }\nonlyDeclared")), 3);
  });

  it("reports errors with cell line numbers, and syntax errors with a caret", async () => {
    const o = await run("const fine = 1\n\nnull!.boom()");
    assert.equal(o.status, "error");
    if (o.status !== "error") return;
    assert.equal(o.error.ename, "TypeError");
    assert.ok(o.error.traceback.some((l) => l.includes(`Cell In[${label}], line 3`)), o.error.traceback.join("\n"));
    const s = await run("const = 5");
    assert.ok(s.status === "error" && s.error.ename === "SyntaxError" && s.error.traceback[0].endsWith("line 1"));
  });

  it("runs magics in order with the code and binds their result", async () => {
    const o = await run("const before = 1\nwhere = %pwd\nwhere.length > 0 && before === 1");
    assert.equal(value(o), true);
    const bad = await run("%pwd --nope");
    assert.ok(bad.status === "error" && bad.error.ename === "UsageError" && bad.error.traceback.length === 1);
  });

  it("an interrupt ends a long await and keeps state", async () => {
    value(await run("const survivor = 'kept'"));
    const pending = run("await new Promise((r) => setTimeout(r, 30000))");
    setTimeout(() => interruptRunningCell(), 50);
    const o = await pending;
    assert.ok(o.status === "error" && o.error.ename === "KeyboardInterrupt");
    assert.equal(value(await run("survivor")), "kept");
  });

  it("expands {expressions} in a line magic's arguments, as IPython does", async () => {
    const dir = `out-${Math.floor(Math.random() * 1e6)}`;
    value(await run(`const where = ${JSON.stringify(dir)}\nconst k = 20`));
    assert.deepEqual(value(await run("words = %echo_words {where}/model {k + 1} {{literal}}\nwords")), [`${dir}/model`, "21", "{literal}"]);
    // Backticks, dollars and backslashes around an expression reach the argument parser as written
    // (which reads a backslash as escaping the next character, as a shell does).
    assert.deepEqual(value(await run(String.raw`%echo_words ${"`"}{k}${"`"} $dollar{k} a\\b`)), ["`20`", "$dollar20", "a\\b"]);
    const bad = await run("%echo_words {unclosed");
    assert.ok(bad.status === "error" && /never closed/.test(bad.error.evalue), JSON.stringify(bad));
  });
});
