// comm_info_request, comm_open, comm_msg, comm_close.
import type { Handler } from "./types.js";

export const commInfo: Handler = (request, kernel) => {
  const target = typeof request.content.target_name === "string" ? request.content.target_name : undefined;
  request.reply("comm_info_reply", { status: "ok", comms: kernel.comms.list(target) });
};

export const commOpen: Handler = (request, kernel) => {
  const { comm_id, target_name, data } = request.content as { comm_id: string; target_name: string; data: unknown };
  kernel.comms.currentParent = request.message;
  if (!kernel.comms.openedByFrontend(comm_id, target_name, data)) {
    // As ipykernel does: tell the frontend the comm is closed, since nobody listens.
    kernel.session.publish("comm_close", { comm_id, data: { error: `no comm target named "${target_name}" is registered` } }, request.message);
  }
};

export const commMsg: Handler = (request, kernel) => {
  const { comm_id, data } = request.content as { comm_id: string; data: unknown };
  kernel.comms.currentParent = request.message;
  kernel.comms.get(comm_id)?.deliver(data);
};

export const commClose: Handler = (request, kernel) => {
  const { comm_id, data } = request.content as { comm_id: string; data: unknown };
  const comm = kernel.comms.get(comm_id);
  if (comm) kernel.comms.forget(comm, data);
};
