// The one table from msg_type to handler. Adding a message type is one line here.
import { commClose, commInfo, commMsg, commOpen } from "./comm.js";
import { execute } from "./execute.js";
import { history } from "./history.js";
import { complete, inspect, isComplete } from "./introspection.js";
import { kernelInfo } from "./kernel-info.js";
import { shutdown } from "./lifecycle.js";
import type { Handler } from "./types.js";

export const handlers: Readonly<Record<string, Handler>> = {
  kernel_info_request: kernelInfo,
  execute_request: execute,
  complete_request: complete,
  inspect_request: inspect,
  is_complete_request: isComplete,
  history_request: history,
  comm_info_request: commInfo,
  comm_open: commOpen,
  comm_msg: commMsg,
  comm_close: commClose,
  shutdown_request: shutdown,
};

/** Requests with no reply, whose busy/idle still wraps them (as ipykernel does). */
export const NO_REPLY = new Set(["comm_open", "comm_msg", "comm_close"]);
