import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { detectPlatform } from "../../lib/env/platform.js";

const noFiles = () => false;
const kaggleDir = (p: string) => p === "/kaggle/working";

describe("detectPlatform", () => {
  it("finds Colab from any COLAB_ variable", () => {
    const p = detectPlatform({ env: { PATH: "/usr/bin", COLAB_RELEASE_TAG: "release-colab_20260101" }, exists: noFiles });
    assert.equal(p.name, "colab");
    assert.match(p.reason, /COLAB_RELEASE_TAG/);
    assert.equal(p.forced, false);
  });

  it("finds Kaggle only when KAGGLE_KERNEL_RUN_TYPE is set and /kaggle/working exists", () => {
    const env = { KAGGLE_KERNEL_RUN_TYPE: "Interactive" };
    const kaggle = detectPlatform({ env, exists: kaggleDir });
    assert.equal(kaggle.name, "kaggle");
    assert.equal(kaggle.tempDir, "/tmp", "temporary files under /tmp on Kaggle");
    assert.equal(detectPlatform({ env, exists: noFiles }).name, "local", "variable without the folder is not Kaggle");
    assert.equal(detectPlatform({ env: {}, exists: kaggleDir }).name, "local", "folder without the variable is not Kaggle");
  });

  it("says local when neither marker is present, with the temp dir from TMPDIR", () => {
    const p = detectPlatform({ env: { HOME: "/root", NOT_COLAB_X: "1", TMPDIR: "/scratch/tmp" }, exists: noFiles });
    assert.equal(p.name, "local");
    assert.equal(p.tempDir, "/scratch/tmp");
  });

  it("lets TSLOTH_PLATFORM force a platform on or off", () => {
    const colabEnv = { COLAB_GPU: "1" };
    assert.equal(detectPlatform({ env: { ...colabEnv, TSLOTH_PLATFORM: "local" }, exists: noFiles }).name, "local");
    const k = detectPlatform({ env: { TSLOTH_PLATFORM: "Kaggle" }, exists: noFiles });
    assert.deepEqual([k.name, k.forced, k.tempDir], ["kaggle", true, "/tmp"]);
    assert.equal(detectPlatform({ env: { TSLOTH_PLATFORM: "colab" }, exists: noFiles }).name, "colab");
  });

  it("lets the option win over TSLOTH_PLATFORM and detection", () => {
    const env = { COLAB_GPU: "1", TSLOTH_PLATFORM: "colab" };
    assert.equal(detectPlatform({ env, exists: noFiles, force: false }).name, "local");
    const p = detectPlatform({ env, exists: noFiles, force: "kaggle" });
    assert.deepEqual([p.name, p.forced], ["kaggle", true]);
    assert.match(p.reason, /option/);
  });

  it("refuses an unknown platform name with what it accepts", () => {
    assert.throws(() => detectPlatform({ env: { TSLOTH_PLATFORM: "sagemaker" } }), /TSLOTH_PLATFORM="sagemaker".*colab, kaggle or local/);
    assert.throws(() => detectPlatform({ force: "paperspace" as never }), /unknown platform "paperspace"/);
  });
});
