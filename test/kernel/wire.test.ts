// The wire codec and HMAC signing, on fresh random content.
import assert from "node:assert/strict";
import { createHmac, randomBytes } from "node:crypto";
import { describe, it } from "node:test";
import { decodeFrames, DELIMITER, encodeFrames } from "../../kernel/wire/codec.js";
import { MessageSigner } from "../../kernel/wire/hmac.js";
import { makeMessage } from "../../kernel/wire/message.js";

const randomContent = () => ({ code: randomBytes(24).toString("base64"), n: Math.random(), nested: { list: [randomBytes(4).toString("hex")] } });

describe("wire codec", () => {
  it("round-trips a signed message with identities and buffers", () => {
    const signer = new MessageSigner(randomBytes(16).toString("hex"));
    const message = makeMessage("execute_request", randomContent(), "session-a", undefined, {
      identities: [randomBytes(5)],
      buffers: [randomBytes(33)],
      metadata: { m: Math.random() },
    });
    const decoded = decodeFrames(encodeFrames(message, signer), signer);
    assert.ok(decoded.ok);
    assert.deepEqual(decoded.message.content, message.content);
    assert.deepEqual(decoded.message.header, message.header);
    assert.deepEqual(decoded.message.identities, message.identities);
    assert.deepEqual(decoded.message.buffers, message.buffers);
  });

  it("signs exactly as the Jupyter spec says: HMAC over header, parent, metadata, content", () => {
    const key = randomBytes(8).toString("hex");
    const frames = encodeFrames(makeMessage("status", randomContent(), "s"), new MessageSigner(key));
    const at = frames.findIndex((f) => f.equals(DELIMITER));
    const expected = createHmac("sha256", key).update(Buffer.concat(frames.slice(at + 2, at + 6))).digest("hex");
    assert.equal(frames[at + 1].toString(), expected);
  });

  it("rejects a wrong or missing signature and any tampered frame", () => {
    const signer = new MessageSigner(randomBytes(16).toString("hex"));
    const frames = encodeFrames(makeMessage("kernel_info_request", randomContent(), "s"), signer);
    const at = frames.findIndex((f) => f.equals(DELIMITER));
    const other = new MessageSigner("another key");
    assert.deepEqual(decodeFrames(frames, other), { ok: false, reason: "wrong signature" });
    const unsigned = [...frames];
    unsigned[at + 1] = Buffer.alloc(0);
    assert.deepEqual(decodeFrames(unsigned, signer), { ok: false, reason: "missing signature" });
    for (let k = at + 2; k < at + 6; k++) {
      const tampered = [...frames];
      tampered[k] = Buffer.concat([tampered[k], Buffer.from(" ")]);
      assert.equal(decodeFrames(tampered, signer).ok, false, `frame ${k} tampered`);
    }
  });

  it("with an empty key neither signs nor checks", () => {
    const signer = new MessageSigner("");
    const frames = encodeFrames(makeMessage("status", randomContent(), "s"), signer);
    assert.equal(frames[frames.findIndex((f) => f.equals(DELIMITER)) + 1].length, 0);
    assert.ok(decodeFrames(frames, signer).ok);
  });

  it("explains malformed frames", () => {
    const signer = new MessageSigner("");
    assert.match((decodeFrames([Buffer.from("x")], signer) as { reason: string }).reason, /delimiter/);
    const frames = [DELIMITER, Buffer.alloc(0), Buffer.from("{}"), Buffer.from("{}"), Buffer.from("{}"), Buffer.from("[")];
    assert.match((decodeFrames(frames, signer) as { reason: string }).reason, /malformed content frame/);
    assert.match((decodeFrames(frames.slice(0, 4), signer) as { reason: string }).reason, /expected 5 frames/);
  });
});
