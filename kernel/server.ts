// The kernel process: the socket thread, the request loop on the main thread (one shell
// request at a time, in order; control requests as soon as the main thread is free), and the
// services handlers use.
import { randomUUID } from "node:crypto";
import { Worker } from "node:worker_threads";
import { CommManager } from "./comm/comms.js";
import { setDisplayPublisher, display, updateDisplay, clearOutput } from "./display.js";
import { installCellGlobals } from "./exec/cell-globals.js";
import { CellExecutor } from "./exec/executor.js";
import { installSigintHandler, kernelAbortSignal } from "./exec/interrupt.js";
import { CellLanguageService } from "./exec/language-service.js";
import { handlers, NO_REPLY } from "./handlers/dispatch.js";
import type { KernelServices, Request } from "./handlers/types.js";
import { History } from "./history.js";
import { InputBroker } from "./io/input.js";
import { captureProcessStreams } from "./io/stream-capture.js";
import { logKernel } from "./log.js";
import { MagicRunner } from "./magics/run.js";
import { KernelSession } from "./session.js";
import { readConnectionFile } from "./wire/connection.js";
import type { JupyterMessage } from "./wire/message.js";
import { MAIN_TICK_MS, reviveBuffers, type FromSocketThread, type SocketThreadData } from "./wire/thread-protocol.js";

// The TypeScript compiler loads this long after start, if no completion asked for it sooner.
const LANGUAGE_SERVICE_WARMUP_MS = 3000;

/** State shared by all magics for the life of the kernel (a loaded model, an adapter, a trainer). */
export const kernelState = new Map<string, unknown>();

export async function runKernel(connectionFile: string): Promise<number> {
  const connection = readConnectionFile(connectionFile);
  const sessionId = randomUUID();
  const mainTick = new SharedArrayBuffer(8);
  const tick = new Float64Array(mainTick);
  tick[0] = Date.now();
  setInterval(() => (tick[0] = Date.now()), MAIN_TICK_MS).unref();
  const socketThread = new Worker(new URL("./wire/socket-thread.js", import.meta.url), {
    workerData: { connection, session: sessionId, mainTick } satisfies SocketThreadData,
  });
  const session = new KernelSession(socketThread, sessionId);

  const ready = await new Promise<FromSocketThread>((resolve) => {
    socketThread.once("message", resolve);
    socketThread.once("error", (e) => resolve({ type: "bind-failed", error: e.message }));
  });
  if (ready.type === "bind-failed") {
    logKernel(`cannot bind the kernel's sockets: ${"error" in ready ? ready.error : ""}`);
    await socketThread.terminate();
    return 1;
  }

  exitWithParent();
  const kernel = createServices(session);
  captureProcessStreams(session);
  installSigintHandler(logKernel);
  process.on("unhandledRejection", (reason) => process.stderr.write(`Unhandled promise rejection: ${reason instanceof Error ? reason.stack ?? reason.message : String(reason)}\n`));
  process.on("uncaughtException", (error) => process.stderr.write(`Uncaught exception: ${error.stack ?? error.message}\n`));

  const queue: Array<{ channel: "shell" | "control"; message: JupyterMessage; seq: number }> = [];

  let draining = false;
  let lastRequestAt = Date.now();

  const handle = async (channel: "shell" | "control", message: JupyterMessage) => {
    const type = message.header.msg_type;
    const handler = handlers[type];
    if (!handler) {
      logKernel(`unknown message type "${type}" on ${channel}: ignored`);
      return undefined;
    }
    session.status("busy", message);
    const request: Request = {
      message,
      channel,
      content: message.content,
      reply: (msgType, content) => void session.send(channel, msgType, content, message),
      replyFenced: (msgType, content) => session.sendFenced(channel, msgType, content, message),
    };
    try {
      return (await handler(request, kernel)) ?? undefined;
    } catch (e) {
      logKernel(`${type} failed: ${(e as Error).stack ?? String(e)}`);
      if (!NO_REPLY.has(type)) {
        request.reply(type.replace(/_request$/, "_reply"), { status: "error", ename: (e as Error).name ?? "Error", evalue: (e as Error).message ?? String(e), traceback: [] });
      }
      return undefined;
    } finally {
      session.status("idle", message);
    }
  };

  const drain = async () => {
    if (draining) return;
    draining = true;
    while (queue.length > 0) {
      const { channel, message } = queue.shift()!;
      const outcome = await handle(channel, message);
      if (outcome?.abortExecutionsUpTo) {
        // Requests numbered up to the fence were posted before it, so they are queued by now.
        const last = await outcome.abortExecutionsUpTo;
        for (let i = 0; i < queue.length; ) {
          const queued = queue[i];
          if (queued.message.header.msg_type !== "execute_request" || queued.seq > last) {
            i++;
            continue;
          }
          queue.splice(i, 1);
          session.status("busy", queued.message);
          session.send(queued.channel, "execute_reply", { status: "aborted", execution_count: kernel.executionCount }, queued.message);
          session.status("idle", queued.message);
        }
      }
    }
    draining = false;
    lastRequestAt = Date.now();
  };

  socketThread.on("message", (m: FromSocketThread) => {
    if (m.type === "message") {
      const message = reviveBuffers(m.message);
      lastRequestAt = Date.now();
      if (m.channel === "stdin") {
        if (message.header.msg_type === "input_reply") kernel.input.reply(message);
        return;
      }
      if (m.channel === "control") {
        void handle("control", message);
        return;
      }
      queue.push({ channel: m.channel, message, seq: m.seq });
      void drain();
    } else if (m.type === "fence") session.fenceReached(m.seq);
    else if (m.type === "shutdown") kernel.shutdown(m.restart);
  });
  socketThread.on("error", (e) => logKernel(`socket thread failed: ${e.stack ?? e.message}`));

  const warmup = setInterval(() => {
    if (draining || Date.now() - lastRequestAt < LANGUAGE_SERVICE_WARMUP_MS) return;
    clearInterval(warmup);
    try {
      kernel.language.warm();
    } catch (e) {
      logKernel(`language service warm-up failed: ${(e as Error).message}`);
    }
  }, 500);
  warmup.unref();

  return await new Promise<number>((resolve) => {
    kernel.shutdown = (restart) => {
      logKernel(`shutdown requested${restart ? " (restart)" : ""}`);
      session.flushStreams();
      socketThread.postMessage({ type: "close" });
      socketThread.once("exit", () => resolve(0));
      setTimeout(() => resolve(0), 1000).unref();
    };
  });
}

// As ipykernel does: a frontend that dies without a shutdown_request (killed, crashed) must not
// leave its kernel running. jupyter_client names itself in JPY_PARENT_PID.
function exitWithParent(): void {
  const parent = Number(process.env.JPY_PARENT_PID);
  if (!Number.isInteger(parent) || parent <= 1) return;
  setInterval(() => {
    try {
      process.kill(parent, 0);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== "ESRCH") return;
      logKernel(`the frontend process ${parent} is gone: exiting`);
      process.exit(0);
    }
  }, 1000).unref();
}

function createServices(session: KernelSession): KernelServices {
  // Magic families import lib/ (the engine); they load beside the first requests, never
  // before the first kernel_info_reply. Handlers that need magics await magicsReady.
  const magicsReady = import("./magics/index.js")
    .then((m) => m.registerBuiltinMagics())
    .catch((e: Error) => logKernel(`magics failed to load, cells run without them: ${e.stack ?? e.message}`));
  setDisplayPublisher((msgType, content) => session.publish(msgType, content));
  const comms = new CommManager(session);
  const input = new InputBroker(session);
  const magics = new MagicRunner((body) => ({
    display,
    updateDisplay,
    clearOutput,
    stdout: (text) => process.stdout.write(text),
    stderr: (text) => process.stderr.write(text),
    signal: kernelAbortSignal(),
    state: kernelState,
    body,
    cwd: process.cwd(),
  }));
  installCellGlobals({ magics, input: input.input, comms: comms.api() });
  return {
    session,
    executor: new CellExecutor(magics),
    language: new CellLanguageService(),
    history: new History(),
    comms,
    input,
    executionCount: 0,
    magicsReady,
    shutdown: () => undefined,
  };
}
