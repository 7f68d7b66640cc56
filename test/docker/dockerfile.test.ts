// What can be checked of the Dockerfile without a Docker engine: its instructions parse, the base
// image has the CUDA compiler, every path it copies exists in the project, the build steps run
// commands the project defines, and the container starts a Jupyter server with the tsloth kernel.
import assert from "node:assert/strict";
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, it } from "node:test";
import { projectRoot } from "../../lib/paths.js";

interface Instruction {
  keyword: string;
  args: string;
  line: number;
}

const KEYWORDS = new Set(["FROM", "RUN", "CMD", "LABEL", "EXPOSE", "ENV", "ADD", "COPY", "ENTRYPOINT", "VOLUME", "USER", "WORKDIR", "ARG", "ONBUILD", "STOPSIGNAL", "HEALTHCHECK", "SHELL"]);

/** Joins continuation lines and drops comments, as Docker's parser does. */
function parseDockerfile(text: string): Instruction[] {
  const out: Instruction[] = [];
  let pending = "";
  let start = 0;
  text.split("\n").forEach((raw, i) => {
    const line = raw.trimEnd();
    if (!pending && (line.trim() === "" || line.trimStart().startsWith("#"))) return;
    if (!pending) start = i + 1;
    pending += (pending ? " " : "") + line.replace(/\\$/, "").trim();
    if (line.endsWith("\\")) return;
    const m = /^(\w+)\s+(.*)$/.exec(pending);
    assert.ok(m, `Dockerfile line ${start}: cannot parse "${pending}"`);
    out.push({ keyword: m[1]!.toUpperCase(), args: m[2]!, line: start });
    pending = "";
  });
  assert.equal(pending, "", "the Dockerfile ends inside a continued line");
  return out;
}

describe("Dockerfile", () => {
  const root = projectRoot();
  const steps = parseDockerfile(readFileSync(join(root, "Dockerfile"), "utf8"));

  it("is made of known instructions and starts from a CUDA image with the compiler", () => {
    for (const s of steps) assert.ok(KEYWORDS.has(s.keyword), `line ${s.line}: unknown instruction ${s.keyword}`);
    assert.equal(steps[0]!.keyword, "FROM");
    assert.match(steps[0]!.args, /^nvidia\/cuda:\S*devel/);
  });

  it("copies only paths that exist in the project", () => {
    const copies = steps.filter((s) => s.keyword === "COPY");
    assert.ok(copies.length > 0);
    for (const c of copies) {
      const words = c.args.split(/\s+/).filter((w) => !w.startsWith("--"));
      for (const src of words.slice(0, -1)) assert.ok(existsSync(join(root, src)), `line ${c.line}: COPY source ${src} does not exist`);
    }
  });

  it("builds with the project's own commands and installs the kernelspec", () => {
    const runs = steps.filter((s) => s.keyword === "RUN").map((s) => s.args).join("\n");
    assert.match(runs, /npm ci/);
    assert.match(runs, /npm run build/);
    assert.match(runs, /bash kernels-cuda\/build\.sh/);
    assert.ok(existsSync(join(root, "kernels-cuda", "build.sh")));
    assert.match(runs, /node bin\/tsloth\.js install/);
    const scripts = (JSON.parse(readFileSync(join(root, "package.json"), "utf8")) as { scripts: Record<string, string> }).scripts;
    assert.ok(scripts.build, "package.json defines the build script the Dockerfile runs");
  });

  it("serves Jupyter with tsloth as the default kernel", () => {
    const cmd = steps.filter((s) => s.keyword === "CMD").at(-1);
    assert.ok(cmd, "a CMD");
    const argv = JSON.parse(cmd.args) as string[];
    assert.equal(argv[0], "jupyter");
    assert.ok(argv.some((a) => a.includes("default_kernel_name=tsloth")));
    assert.ok(steps.some((s) => s.keyword === "EXPOSE" && s.args.includes("8888")));
  });
});
