// execute_request: run the cell, publish its input, output, result or error, and reply.
import { mimeBundleOf, textPlain } from "../mime.js";
import type { Handler, KernelServices } from "./types.js";

function userExpressions(expressions: unknown, kernel: KernelServices): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  if (!expressions || typeof expressions !== "object") return out;
  for (const [name, expression] of Object.entries(expressions as Record<string, unknown>)) {
    try {
      out[name] = { status: "ok", data: mimeBundleOf(kernel.executor.evaluate(String(expression))), metadata: {} };
    } catch (e) {
      const error = e as Error;
      out[name] = { status: "error", ename: error?.name ?? "Error", evalue: error?.message ?? String(e), traceback: [] };
    }
  }
  return out;
}

export const execute: Handler = async (request, kernel) => {
  const { content, message } = request;
  const code = typeof content.code === "string" ? content.code : "";
  const silent = content.silent === true;
  const storeHistory = !silent && content.store_history !== false;
  const stopOnError = content.stop_on_error !== false;

  if (storeHistory) kernel.executionCount++;
  const count = kernel.executionCount;
  const { session } = kernel;
  session.outputParent = message;
  kernel.comms.currentParent = message;
  kernel.input.request = { parent: message, allowStdin: content.allow_stdin === true };
  if (!silent) session.publish("execute_input", { code, execution_count: count }, message);
  if (storeHistory) kernel.history.add(count, code);

  await kernel.magicsReady;
  const outcome = await kernel.executor.run(code, storeHistory ? count : " ");
  session.flushStreams();
  kernel.input.request = undefined;
  kernel.language.recordCell(code);

  if (outcome.status === "ok") {
    if (outcome.hasValue && !silent) {
      const data = mimeBundleOf(outcome.value);
      session.publish("execute_result", { execution_count: count, data, metadata: {} }, message);
      if (storeHistory) kernel.history.setOutput(count, textPlain(outcome.value));
    }
    request.reply("execute_reply", {
      status: "ok",
      execution_count: count,
      user_expressions: userExpressions(content.user_expressions, kernel),
      payload: [],
    });
    return;
  }
  const { ename, evalue, traceback } = outcome.error;
  session.publish("error", { ename, evalue, traceback }, message);
  const errorReply = { status: "error", execution_count: count, ename, evalue, traceback, user_expressions: {} };
  if (!stopOnError) return void request.reply("execute_reply", errorReply);
  // stop_on_error: executions the frontend sent before it could see this error are aborted.
  return { abortExecutionsUpTo: request.replyFenced("execute_reply", errorReply) };
};
