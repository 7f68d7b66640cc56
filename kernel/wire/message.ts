// The Jupyter message shape (messaging protocol 5.3) and the one place headers are made.
import { randomUUID } from "node:crypto";

export const PROTOCOL_VERSION = "5.3";

export interface MessageHeader {
  msg_id: string;
  session: string;
  username: string;
  date: string;
  msg_type: string;
  version: string;
  [key: string]: unknown;
}

export interface JupyterMessage {
  /** ZeroMQ routing prefix (ROUTER identities), echoed back on replies. */
  identities: Buffer[];
  header: MessageHeader;
  parent_header: Partial<MessageHeader>;
  metadata: Record<string, unknown>;
  content: Record<string, unknown>;
  buffers: Buffer[];
}

/** The channels of a kernel; heartbeat is answered in the socket thread and never carries messages. */
export type Channel = "shell" | "control" | "stdin" | "iopub";

export function makeHeader(msgType: string, session: string): MessageHeader {
  return {
    msg_id: randomUUID(),
    session,
    username: "tsloth",
    date: new Date().toISOString(),
    msg_type: msgType,
    version: PROTOCOL_VERSION,
  };
}

/** A message answering or caused by `parent` (undefined parent: an unsolicited message). */
export function makeMessage(
  msgType: string,
  content: Record<string, unknown>,
  session: string,
  parent?: JupyterMessage,
  extra: { metadata?: Record<string, unknown>; buffers?: Buffer[]; identities?: Buffer[] } = {},
): JupyterMessage {
  return {
    identities: extra.identities ?? parent?.identities ?? [],
    header: makeHeader(msgType, session),
    parent_header: parent ? parent.header : {},
    metadata: extra.metadata ?? {},
    content,
    buffers: extra.buffers ?? [],
  };
}
