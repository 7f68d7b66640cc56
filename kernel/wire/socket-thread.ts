// The socket thread: binds the five channels and keeps answering heartbeats and control
// requests (interrupt, kernel_info, shutdown) while the main thread runs user code that may
// block it. Shell, stdin and other control requests go to the main thread.
import { Session } from "node:inspector";
import { parentPort, workerData } from "node:worker_threads";
import * as zmq from "zeromq";
import { endpoint } from "./connection.js";
import { decodeFrames, encodeFrames } from "./codec.js";
import { MessageSigner } from "./hmac.js";
import { makeMessage, type Channel, type JupyterMessage } from "./message.js";
import { SendQueue } from "./send-queue.js";
import { MAIN_TICK_MS, reviveBuffers, type FromSocketThread, type SocketThreadData, type ToSocketThread } from "./thread-protocol.js";
import { kernelInfoContent } from "../kernel-info.js";
import { logKernel } from "../log.js";

const { connection, session, mainTick } = workerData as SocketThreadData;
const lastMainTick = new Float64Array(mainTick);
const port = parentPort!;
const signer = new MessageSigner(connection.key, connection.signature_scheme);
const post = (m: FromSocketThread) => port.postMessage(m);
let received = 0;

const shell = new zmq.Router();
const control = new zmq.Router();
const stdin = new zmq.Router();
const iopub = new zmq.XPublisher();
const heartbeat = new zmq.Reply();

const queues: Record<Channel, SendQueue> = {
  shell: new SendQueue(shell, "shell"),
  control: new SendQueue(control, "control"),
  stdin: new SendQueue(stdin, "stdin"),
  iopub: new SendQueue(iopub, "iopub"),
};

// ZeroMQ drops what a PUB socket sends before a subscriber's subscription arrives, and a frontend
// may execute as soon as kernel_info is answered (jupyter console does), so its first busy/idle
// would be lost and it would wait forever. iopub is an XPUB socket: it holds messages until the
// first subscription is seen (or for HOLD_IOPUB_MS at most).
const HOLD_IOPUB_MS = 10_000;
const HOLD_IOPUB_MAX = 1000;
let iopubSubscribed = false;
const heldIopub: Buffer[][] = [];

function releaseIopub(): void {
  iopubSubscribed = true;
  for (const frames of heldIopub.splice(0)) void queues.iopub.send(frames);
}

async function watchSubscriptions(): Promise<void> {
  for await (const [event] of iopub) {
    if (event[0] === 1 && !iopubSubscribed) releaseIopub();
  }
}

function send(channel: Channel, message: JupyterMessage): void {
  // iopub subscribers filter by topic; ipykernel uses "kernel.<id>.<msg_type>".
  if (channel === "iopub") message.identities = [Buffer.from(`kernel.${session}.${message.header.msg_type}`)];
  const frames = encodeFrames(message, signer);
  if (channel === "iopub" && !iopubSubscribed && heldIopub.length < HOLD_IOPUB_MAX) heldIopub.push(frames);
  else void queues[channel].send(frames);
}

function reply(channel: Channel, parent: JupyterMessage, msgType: string, content: Record<string, unknown>): void {
  send(channel, makeMessage(msgType, content, session, parent));
}

function status(state: string, parent?: JupyterMessage): void {
  send("iopub", makeMessage("status", { execution_state: state }, session, parent));
}

// SIGINT cannot break synchronous code that runs outside the cell's own script (after the
// cell's first await, or in a timer). If the main thread's event loop has not turned for this
// long after the signal, stop the JavaScript it runs through the inspector, as a debugger's
// "terminate" does; its SIGINT handler then ends the cell with KeyboardInterrupt.
const BLOCKED_AFTER_SIGINT_MS = 1000;
let inspector: Session | undefined;

function terminateIfStillBlocked(): void {
  if (Date.now() - lastMainTick[0] < BLOCKED_AFTER_SIGINT_MS - MAIN_TICK_MS) return;
  logKernel("the main thread stayed blocked after SIGINT: terminating the JavaScript it runs");
  if (!inspector) {
    inspector = new Session();
    inspector.connectToMainThread();
  }
  inspector.post("Runtime.terminateExecution", (e) => e && logKernel(`terminateExecution failed: ${e.message}`));
}

function handleControl(message: JupyterMessage): boolean {
  const type = message.header.msg_type;
  if (type === "interrupt_request") {
    status("busy", message);
    // The main thread may be inside a synchronous loop; a signal is the one thing that reaches
    // it there (vm breakOnSigint), and its SIGINT handler aborts long awaits.
    process.kill(process.pid, "SIGINT");
    setTimeout(terminateIfStillBlocked, BLOCKED_AFTER_SIGINT_MS).unref();
    reply("control", message, "interrupt_reply", { status: "ok" });
    status("idle", message);
    return true;
  }
  if (type === "kernel_info_request") {
    status("busy", message);
    reply("control", message, "kernel_info_reply", kernelInfoContent());
    status("idle", message);
    return true;
  }
  if (type === "shutdown_request") {
    const restart = message.content.restart === true;
    status("busy", message);
    reply("control", message, "shutdown_reply", { status: "ok", restart });
    status("idle", message);
    post({ type: "shutdown", restart });
    // If user code keeps the main thread from exiting, end the process from here.
    setTimeout(() => process.kill(process.pid, "SIGKILL"), 3000).unref();
    return true;
  }
  return false;
}

async function receive(socket: zmq.Router, channel: "shell" | "control" | "stdin"): Promise<void> {
  for await (const frames of socket) {
    const decoded = decodeFrames(frames as Buffer[], signer);
    if (!decoded.ok) {
      logKernel(`dropped a message on ${channel}: ${decoded.reason}`);
      continue;
    }
    if (channel === "control" && handleControl(decoded.message)) continue;
    post({ type: "message", channel, message: decoded.message, seq: ++received });
  }
}

async function answerHeartbeats(): Promise<void> {
  for await (const frames of heartbeat) await heartbeat.send(frames as Buffer[]);
}

async function bindAll(): Promise<void> {
  await Promise.all([
    shell.bind(endpoint(connection, "shell")),
    control.bind(endpoint(connection, "control")),
    stdin.bind(endpoint(connection, "stdin")),
    iopub.bind(endpoint(connection, "iopub")),
    heartbeat.bind(endpoint(connection, "hb")),
  ]);
}

port.on("message", (m: ToSocketThread) => {
  if (m.type === "send") {
    // Taken before the message can reach the frontend: whatever it sends in answer comes later.
    if (m.fence) post({ type: "fence", seq: received });
    send(m.channel, reviveBuffers(m.message));
  } else if (m.type === "close") {
    // Let queued replies leave before the sockets close.
    const drained = Object.values(queues).map((q) => q.drained());
    void Promise.race([Promise.all(drained), new Promise((r) => setTimeout(r, 200))]).then(() => {
      for (const s of [shell, control, stdin, iopub, heartbeat]) s.close();
      port.close();
    });
  }
});

try {
  await bindAll();
  status("starting");
  post({ type: "ready" });
  void receive(shell, "shell");
  void receive(control, "control");
  void receive(stdin, "stdin");
  void answerHeartbeats();
  void watchSubscriptions();
  setTimeout(() => iopubSubscribed || releaseIopub(), HOLD_IOPUB_MS).unref();
} catch (e) {
  post({ type: "bind-failed", error: (e as Error).message });
}
