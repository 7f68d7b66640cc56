// Input history of this kernel session, for history_request (tail, range, search).
export interface HistoryEntry {
  session: number;
  line: number;
  input: string;
  output: string | undefined;
}

// One session per kernel process; ipykernel numbers sessions from its sqlite database, we
// keep history in memory and call the running session 1.
const SESSION = 1;

export class History {
  private readonly entries: HistoryEntry[] = [];

  add(line: number, input: string): void {
    this.entries.push({ session: SESSION, line, input, output: undefined });
  }

  setOutput(line: number, output: string): void {
    const entry = this.entries.find((e) => e.line === line);
    if (entry) entry.output = output;
  }

  tail(n: number): HistoryEntry[] {
    return n > 0 ? this.entries.slice(-n) : [];
  }

  /** Lines start..stop-1 (stop 0 or absent: to the end) of a session (0 or negative: relative to this one). */
  range(session: number, start: number, stop: number | undefined): HistoryEntry[] {
    if (session > 0 && session !== SESSION) return [];
    return this.entries.filter((e) => e.line >= start && (stop === undefined || stop <= 0 || e.line < stop));
  }

  /** Glob search (`*`, `?`) over inputs, newest n, optionally without repeats. */
  search(pattern: string, n: number | undefined, unique: boolean): HistoryEntry[] {
    const regex = new RegExp(`^${pattern.replace(/[.+^${}()|[\]\\]/g, "\\$&").replace(/\*/g, "[\\s\\S]*").replace(/\?/g, ".")}$`);
    let hits = this.entries.filter((e) => regex.test(e.input));
    if (unique) {
      const seen = new Set<string>();
      hits = hits.reverse().filter((e) => !seen.has(e.input) && seen.add(e.input)).reverse();
    }
    return n && n > 0 ? hits.slice(-n) : hits;
  }
}
