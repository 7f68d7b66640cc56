// Frames <-> message: [identities..., "<IDS|MSG>", signature, header, parent, metadata, content, buffers...].
import type { JupyterMessage } from "./message.js";
import type { MessageSigner } from "./hmac.js";

export const DELIMITER = Buffer.from("<IDS|MSG>");

export type DecodeResult = { ok: true; message: JupyterMessage } | { ok: false; reason: string };

export function decodeFrames(frames: Buffer[], signer: MessageSigner): DecodeResult {
  const at = frames.findIndex((f) => f.equals(DELIMITER));
  if (at < 0) return { ok: false, reason: "no <IDS|MSG> delimiter frame" };
  if (frames.length < at + 6) return { ok: false, reason: `expected 5 frames after the delimiter, found ${frames.length - at - 1}` };
  const signature = frames[at + 1];
  const signed = frames.slice(at + 2, at + 6);
  if (!signer.verify(signature, signed)) {
    return { ok: false, reason: signature.length === 0 ? "missing signature" : "wrong signature" };
  }
  const parts: Record<string, unknown>[] = [];
  for (const [i, name] of ["header", "parent_header", "metadata", "content"].entries()) {
    try {
      const value: unknown = JSON.parse(signed[i].toString("utf8"));
      if (value === null || typeof value !== "object" || Array.isArray(value)) throw new Error("not a JSON object");
      parts.push(value as Record<string, unknown>);
    } catch (e) {
      return { ok: false, reason: `malformed ${name} frame (${(e as Error).message})` };
    }
  }
  const [header, parent_header, metadata, content] = parts;
  if (typeof header.msg_type !== "string") return { ok: false, reason: "header has no msg_type" };
  return {
    ok: true,
    message: {
      identities: frames.slice(0, at),
      header: header as JupyterMessage["header"],
      parent_header,
      metadata,
      content,
      buffers: frames.slice(at + 6),
    },
  };
}

export function encodeFrames(message: JupyterMessage, signer: MessageSigner): Buffer[] {
  const signed = [message.header, message.parent_header, message.metadata, message.content].map((part) =>
    Buffer.from(JSON.stringify(part), "utf8"),
  );
  return [...message.identities, DELIMITER, Buffer.from(signer.sign(signed), "ascii"), ...signed, ...message.buffers];
}
