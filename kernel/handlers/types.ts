// What every message handler gets: the request, a way to reply, and the kernel's services.
import type { CommManager } from "../comm/comms.js";
import type { CellExecutor } from "../exec/executor.js";
import type { CellLanguageService } from "../exec/language-service.js";
import type { History } from "../history.js";
import type { InputBroker } from "../io/input.js";
import type { KernelSession } from "../session.js";
import type { JupyterMessage } from "../wire/message.js";

export interface Request {
  message: JupyterMessage;
  channel: "shell" | "control";
  content: Record<string, unknown>;
  reply(msgType: string, content: Record<string, unknown>): void;
  /** reply(), resolving with the fence of session.sendFenced (for stop_on_error). */
  replyFenced(msgType: string, content: Record<string, unknown>): Promise<number>;
}

export interface KernelServices {
  session: KernelSession;
  executor: CellExecutor;
  language: CellLanguageService;
  history: History;
  comms: CommManager;
  input: InputBroker;
  /** Execution counter: the number of the last cell run with store_history. */
  executionCount: number;
  /** Resolves once every magic family is registered (they load after start-up). */
  magicsReady: Promise<void>;
  shutdown(restart: boolean): void;
}

/** What a handler asks of the request loop after it: abort queued execute_requests (stop_on_error). */
export interface HandlerOutcome {
  /** Abort the queued execute_requests received up to this fence. */
  abortExecutionsUpTo?: Promise<number>;
}

export type Handler = (request: Request, kernel: KernelServices) => HandlerOutcome | void | Promise<HandlerOutcome | void>;
