import { kernelInfoContent } from "../kernel-info.js";
import type { Handler } from "./types.js";

export const kernelInfo: Handler = (request) => {
  request.reply("kernel_info_reply", kernelInfoContent());
};
