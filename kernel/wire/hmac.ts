// HMAC signing of the four JSON frames (header, parent header, metadata, content), as the
// Jupyter wire protocol specifies; verification compares in constant time so a forger learns
// nothing from how long a rejection takes.
import { createHmac, timingSafeEqual } from "node:crypto";

export class MessageSigner {
  private readonly algorithm: string | undefined;

  /** `scheme` as in the connection file ("hmac-sha256"); an empty key turns signing off. */
  constructor(
    private readonly key: string,
    scheme = "hmac-sha256",
  ) {
    if (key === "") return;
    const match = /^hmac-(sha\d+)$/.exec(scheme);
    if (!match) throw new Error(`signature_scheme: expected hmac-sha256 (or another hmac-shaN), found "${scheme}"`);
    this.algorithm = match[1];
  }

  get enabled(): boolean {
    return this.algorithm !== undefined;
  }

  sign(frames: readonly Buffer[]): string {
    if (!this.algorithm) return "";
    const h = createHmac(this.algorithm, this.key);
    for (const f of frames) h.update(f);
    return h.digest("hex");
  }

  /** True when `signature` is the signature of `frames`, or when signing is off. */
  verify(signature: Buffer, frames: readonly Buffer[]): boolean {
    if (!this.algorithm) return true;
    const expected = Buffer.from(this.sign(frames), "ascii");
    return signature.length === expected.length && timingSafeEqual(signature, expected);
  }
}
