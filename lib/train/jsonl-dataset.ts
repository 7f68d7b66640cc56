// Training records from a JSONL file with their line numbers (so later errors, such as a sample
// longer than max_seq_length, can name the line). Each line is parsed by the formats layer.
import { existsSync, readFileSync, statSync } from "node:fs";
import { parseDatasetLine, type DatasetExample } from "../formats/jsonl-dataset.js";

export type TrainingRecord = DatasetExample & { line: number };

export function parseJsonlRecords(content: string, source: string): TrainingRecord[] {
  const records: TrainingRecord[] = [];
  content.split(/\r?\n/).forEach((raw, i) => {
    if (raw.trim() !== "") records.push({ ...parseDatasetLine(raw, `${source} line ${i + 1}`), line: i + 1 });
  });
  if (records.length === 0) throw new Error(`tsloth: ${source} holds no records; expected one {"messages": [...]} or {"text": "..."} per line`);
  return records;
}

export function readJsonlRecords(path: string): TrainingRecord[] {
  if (!existsSync(path)) throw new Error(`tsloth: data file ${path} does not exist; pass --data with a JSONL file (or "tsloth-tiny-data" for the built-in set)`);
  if (statSync(path).isDirectory()) throw new Error(`tsloth: data path ${path} is a directory; expected a JSONL file`);
  return parseJsonlRecords(readFileSync(path, "utf8"), path);
}
