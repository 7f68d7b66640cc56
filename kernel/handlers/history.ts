// history_request: tail, range and search over this session's inputs.
import type { HistoryEntry } from "../history.js";
import type { Handler } from "./types.js";

export const history: Handler = (request, kernel) => {
  const c = request.content;
  const n = typeof c.n === "number" ? c.n : 10;
  let entries: HistoryEntry[];
  switch (c.hist_access_type) {
    case "tail":
      entries = kernel.history.tail(n);
      break;
    case "range":
      entries = kernel.history.range(Number(c.session ?? 0), Number(c.start ?? 1), typeof c.stop === "number" ? c.stop : undefined);
      break;
    case "search":
      entries = kernel.history.search(String(c.pattern ?? "*"), typeof c.n === "number" ? c.n : undefined, c.unique === true);
      break;
    default:
      request.reply("history_reply", { status: "error", ename: "ValueError", evalue: `hist_access_type must be tail, range or search; found ${JSON.stringify(c.hist_access_type)}`, traceback: [], history: [] });
      return;
  }
  const withOutput = c.output === true;
  request.reply("history_reply", {
    status: "ok",
    history: entries.map((e) => [e.session, e.line, withOutput ? [e.input, e.output ?? null] : e.input]),
  });
};
