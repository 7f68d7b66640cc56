// iopub messages -> nbformat 4 outputs of one cell, as nbclient builds them.
import type { JupyterMessage } from "../wire/message.js";

export type Output = Record<string, unknown> & { output_type: string };

export class CellOutputs {
  readonly outputs: Output[] = [];
  private clearOnNext = false;

  constructor(private readonly displays: Map<string, Output[]>) {}

  add(message: JupyterMessage): void {
    const c = message.content as Record<string, unknown>;
    const type = message.header.msg_type;
    if (type === "clear_output") {
      if (c.wait === true) this.clearOnNext = true;
      else this.outputs.length = 0;
      return;
    }
    if (type === "update_display_data") {
      const id = (c.transient as { display_id?: string } | undefined)?.display_id;
      for (const out of (id && this.displays.get(id)) || []) Object.assign(out, { data: c.data, metadata: c.metadata ?? {} });
      return;
    }
    const output = this.toOutput(type, c);
    if (!output) return;
    if (this.clearOnNext) (this.outputs.length = 0), (this.clearOnNext = false);
    const last = this.outputs[this.outputs.length - 1];
    if (output.output_type === "stream" && last?.output_type === "stream" && last.name === output.name) {
      last.text = String(last.text) + String(output.text);
      return;
    }
    this.outputs.push(output);
    const id = (c.transient as { display_id?: string } | undefined)?.display_id;
    if (id) this.displays.set(id, [...(this.displays.get(id) ?? []), output]);
  }

  private toOutput(type: string, c: Record<string, unknown>): Output | undefined {
    switch (type) {
      case "stream":
        return { output_type: "stream", name: c.name, text: c.text };
      case "display_data":
        return { output_type: "display_data", data: c.data, metadata: c.metadata ?? {} };
      case "execute_result":
        return { output_type: "execute_result", data: c.data, metadata: c.metadata ?? {}, execution_count: c.execution_count };
      case "error":
        return { output_type: "error", ename: c.ename, evalue: c.evalue, traceback: c.traceback };
      default:
        return undefined;
    }
  }
}
