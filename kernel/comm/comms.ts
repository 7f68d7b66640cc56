// Comms: named two-way channels between kernel code and frontend widgets. Targets are
// registered by kernel code (cells: comms.registerTarget); either side may open a comm.
import { randomUUID } from "node:crypto";
import type { KernelSession } from "../session.js";
import type { JupyterMessage } from "../wire/message.js";

type Handler = (data: unknown) => void;

export class Comm {
  private msgHandlers: Handler[] = [];
  private closeHandlers: Handler[] = [];
  closed = false;

  constructor(
    readonly id: string,
    readonly targetName: string,
    private readonly manager: CommManager,
  ) {}

  send(data: unknown = {}): void {
    if (this.closed) throw new Error(`comm ${this.id} (${this.targetName}) is closed; open a new one`);
    this.manager.publish("comm_msg", { comm_id: this.id, data });
  }

  close(data: unknown = {}): void {
    if (this.closed) return;
    this.manager.publish("comm_close", { comm_id: this.id, data });
    this.manager.forget(this, data);
  }

  onMsg(handler: Handler): void {
    this.msgHandlers.push(handler);
  }

  onClose(handler: Handler): void {
    this.closeHandlers.push(handler);
  }

  deliver(data: unknown): void {
    for (const h of this.msgHandlers) h(data);
  }

  closedByFrontend(data: unknown): void {
    this.closed = true;
    for (const h of this.closeHandlers) h(data);
  }
}

export class CommManager {
  private readonly targets = new Map<string, (comm: Comm, data: unknown) => void>();
  private readonly comms = new Map<string, Comm>();
  /** The request whose handling is in progress, so comm output is parented to it. */
  currentParent: JupyterMessage | undefined;

  constructor(private readonly session: KernelSession) {}

  registerTarget(name: string, onOpen: (comm: Comm, data: unknown) => void): void {
    this.targets.set(name, onOpen);
  }

  open(targetName: string, data: unknown = {}): Comm {
    const comm = new Comm(randomUUID(), targetName, this);
    this.comms.set(comm.id, comm);
    this.publish("comm_open", { comm_id: comm.id, target_name: targetName, data });
    return comm;
  }

  publish(msgType: string, content: Record<string, unknown>): void {
    this.session.publish(msgType, content, this.currentParent ?? this.session.outputParent);
  }

  forget(comm: Comm, data: unknown): void {
    this.comms.delete(comm.id);
    comm.closedByFrontend(data);
  }

  /** comm_open from the frontend; false when no target of that name exists. */
  openedByFrontend(id: string, targetName: string, data: unknown): boolean {
    const onOpen = this.targets.get(targetName);
    if (!onOpen) return false;
    const comm = new Comm(id, targetName, this);
    this.comms.set(id, comm);
    onOpen(comm, data);
    return true;
  }

  get(id: string): Comm | undefined {
    return this.comms.get(id);
  }

  list(targetName?: string): Record<string, { target_name: string }> {
    const out: Record<string, { target_name: string }> = {};
    for (const c of this.comms.values()) if (!targetName || c.targetName === targetName) out[c.id] = { target_name: c.targetName };
    return out;
  }

  /** The public face of comms in cells. */
  api(): { registerTarget: CommManager["registerTarget"]; open: CommManager["open"] } {
    return { registerTarget: this.registerTarget.bind(this), open: this.open.bind(this) };
  }
}
