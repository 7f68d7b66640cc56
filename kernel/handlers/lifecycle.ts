// shutdown_request on shell (control's is answered by the socket thread).
import type { Handler } from "./types.js";

export const shutdown: Handler = (request, kernel) => {
  const restart = request.content.restart === true;
  request.reply("shutdown_reply", { status: "ok", restart });
  kernel.shutdown(restart);
};
