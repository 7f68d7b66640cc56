// The tsloth command: help, version, kernelspec install/uninstall, kernel start errors.
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, it } from "node:test";
import { projectRoot } from "../../lib/paths.js";
import { tslothBin } from "../helpers/kernel-env.js";

const tsloth = (...args: string[]) => spawnSync(process.execPath, [tslothBin(), ...args], { encoding: "utf8" });
const built = existsSync(join(projectRoot(), "dist", "kernel", "cli.js"));

describe("tsloth CLI", { skip: built ? undefined : "dist/ is not built (npm run build)" }, () => {
  it("prints help listing every subcommand, and the version", () => {
    const help = tsloth("--help");
    assert.equal(help.status, 0);
    for (const sub of ["kernel -f CONNECTION_FILE", "install [--user | --sys-prefix | --prefix DIR] [--name NAME]", "uninstall", "run NOTEBOOK.ipynb"]) {
      assert.ok(help.stdout.includes(sub), `help lacks ${sub}`);
    }
    const pkg = JSON.parse(readFileSync(join(projectRoot(), "package.json"), "utf8"));
    assert.equal(tsloth("--version").stdout.trim(), pkg.version);
    const unknown = tsloth("frobnicate");
    assert.notEqual(unknown.status, 0);
    assert.match(unknown.stderr, /unknown command "frobnicate"/);
  });

  it("installs a kernelspec with absolute node and entry paths, logos, and uninstalls it", () => {
    const prefix = mkdtempSync(join(tmpdir(), "tsloth-install-"));
    const r = tsloth("install", "--prefix", prefix, "--name", "ts-test");
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, /run `tsloth install` again/);
    const dir = join(prefix, "share", "jupyter", "kernels", "ts-test");
    const spec = JSON.parse(readFileSync(join(dir, "kernel.json"), "utf8"));
    assert.deepEqual(spec.argv, [process.execPath, tslothBin(), "kernel", "-f", "{connection_file}"]);
    assert.equal(spec.language, "typescript");
    assert.equal(spec.interrupt_mode, "message");
    assert.equal(spec.metadata.tsloth.project, projectRoot());
    for (const logo of ["logo-32x32.png", "logo-64x64.png", "logo-svg.svg"]) assert.ok(existsSync(join(dir, logo)), logo);
    const png = readFileSync(join(dir, "logo-64x64.png"));
    assert.equal(png.subarray(1, 4).toString(), "PNG");
    assert.equal(png.readUInt32BE(16), 64);

    // A kernelspec left by a project that moved is rewritten, and the output says so.
    writeFileSync(join(dir, "kernel.json"), JSON.stringify({ ...spec, argv: ["/old/node", "/old/place/bin/tsloth.js"], metadata: { tsloth: { project: "/old/place" } } }));
    const again = tsloth("install", "--prefix", prefix, "--name", "ts-test", "--interrupt-mode", "signal");
    assert.match(again.stdout, /it pointed at \/old\/place before/);
    const fixed = JSON.parse(readFileSync(join(dir, "kernel.json"), "utf8"));
    assert.equal(fixed.argv[1], tslothBin());
    assert.equal(fixed.interrupt_mode, "signal");

    const list = spawnSync("jupyter", ["kernelspec", "list", "--json"], { encoding: "utf8", env: { ...process.env, JUPYTER_PATH: join(prefix, "share", "jupyter") } });
    if (list.status === 0) assert.ok(JSON.parse(list.stdout).kernelspecs["ts-test"], "jupyter kernelspec list shows the kernel");

    assert.equal(tsloth("uninstall", "--prefix", prefix, "--name", "ts-test").status, 0);
    assert.ok(!existsSync(dir));
    const missing = tsloth("uninstall", "--prefix", prefix, "--name", "ts-test");
    assert.equal(missing.status, 1);
    assert.match(missing.stderr, /no kernelspec "ts-test"/);
  });

  it("rejects conflicting locations and bad options with one clear line", () => {
    const r = tsloth("install", "--user", "--prefix", "/tmp/x");
    assert.equal(r.status, 1);
    assert.match(r.stderr, /choose one of --user, --sys-prefix, --prefix DIR/);
    const bad = tsloth("install", "--prefix", "/tmp/x", "--colour", "red");
    assert.match(bad.stderr, /unknown option --colour/);
  });

  it("refuses to start the kernel without a readable connection file", () => {
    const missing = tsloth("kernel", "-f", "/nonexistent/kernel-123.json");
    assert.notEqual(missing.status, 0);
    assert.match(missing.stderr, /connection file \/nonexistent\/kernel-123\.json does not exist/);
    const none = tsloth("kernel");
    assert.notEqual(none.status, 0);
    assert.match(none.stderr, /expected -f CONNECTION_FILE/);
    const garbage = join(mkdtempSync(join(tmpdir(), "tsloth-conn-")), "kernel.json");
    writeFileSync(garbage, "{ not json");
    const bad = tsloth("kernel", "-f", garbage);
    assert.notEqual(bad.status, 0);
    assert.match(bad.stderr, /is not valid JSON/);
    writeFileSync(garbage, JSON.stringify({ ip: "127.0.0.1", key: "k", shell_port: "x" }));
    assert.match(tsloth("kernel", "-f", garbage).stderr, /shell_port must be a port number/);
  });
});
