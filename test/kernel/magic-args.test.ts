// Magic argument parsing: words, typed options with defaults, positionals, one-line errors.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { parseMagicArgs, splitWords } from "../../kernel/magics/args.js";
import { parseCellMagic, replaceLineMagics } from "../../kernel/magics/cell-syntax.js";
import { MagicUsageError, type MagicDefinition } from "../../kernel/magics/types.js";

const train: MagicDefinition = {
  name: "train",
  kind: "line",
  summary: "train",
  positionals: [{ name: "model", help: "model variable", required: true }, { name: "data", help: "dataset" }],
  options: [
    { name: "steps", type: "integer", default: 60, help: "optimizer steps" },
    { name: "lr", type: "number", default: 2e-4, help: "learning rate" },
    { name: "checkpoint", type: "string", default: "unsloth", choices: ["off", "true", "unsloth"], help: "gradient checkpointing" },
    { name: "packing", type: "boolean", default: false, help: "pack sequences" },
    { name: "output_dir", type: "string", help: "where to save" },
  ],
  run: () => undefined,
};

describe("magic arguments", () => {
  it("splits words with quotes and escapes", () => {
    assert.deepEqual(splitWords(`a "b c" 'd "e"' f\\ g --x="1 2"`), ["a", "b c", 'd "e"', "f g", "--x=1 2"]);
    assert.throws(() => splitWords(`"open`), /unterminated " quote/);
  });

  it("fills defaults and converts typed values in every spelling", () => {
    const steps = 1 + Math.floor(Math.random() * 1000);
    const args = parseMagicArgs(train, `m --steps ${steps} --lr=0.001 --checkpoint=true --packing --output-dir "out dir"`);
    assert.deepEqual(args, { model: "m", data: undefined, steps, lr: 0.001, checkpoint: "true", packing: true, output_dir: "out dir" });
    assert.deepEqual(parseMagicArgs(train, "m ds --no-packing"), { model: "m", data: "ds", steps: 60, lr: 2e-4, checkpoint: "unsloth", packing: false, output_dir: undefined });
    assert.equal(parseMagicArgs(train, "m --packing=false").packing, false);
  });

  it("fails with one clear line for unknown flags, bad values and missing arguments", () => {
    const cases: Array<[string, RegExp]> = [
      ["m --stesp 3", /%train: unknown option --stesp \(options: --steps, --lr/],
      ["m --steps 1.5", /--steps expects an integer, found "1.5"/],
      ["m --lr fast", /--lr expects a number, found "fast"/],
      ["m --checkpoint sometimes", /--checkpoint expects one of off, true, unsloth/],
      ["m --packing=maybe", /--packing expects true or false/],
      ["m --steps", /--steps needs a value/],
      ["", /missing argument MODEL/],
      ["a b c", /expected at most 2 argument/],
    ];
    for (const [line, message] of cases) {
      assert.throws(() => parseMagicArgs(train, line), (e: unknown) => e instanceof MagicUsageError && message.test(e.message) && !e.message.includes("\n"), line);
    }
  });

  it("finds line magics, bindings and cell magics without moving lines", () => {
    const cell = "const a = 1\nmodel = %load_4bit tsloth-tiny --rank 8\n  %vram\nconst b = a % 2\n%help train";
    const out = replaceLineMagics(cell).split("\n");
    assert.equal(out.length, 5);
    assert.equal(out[1], 'model = await __tsloth.magic("load_4bit", "tsloth-tiny --rank 8");');
    assert.equal(out[2], '  await __tsloth.magic("vram", "");');
    assert.equal(out[3], "const b = a % 2");
    assert.deepEqual(parseCellMagic("%%bash --timeout 3\necho hi\n"), { name: "bash", args: "--timeout 3", body: "echo hi\n" });
    assert.equal(parseCellMagic("const x = 1\n%%bash"), undefined);
  });
});
