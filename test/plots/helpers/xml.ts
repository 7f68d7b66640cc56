// Parses SVG/XML with Python's xml.etree (a real, strict XML parser) and returns what the tests
// look at: the root tag and every element's tag and attributes.
import { spawnSync } from "node:child_process";
import { jupyterPython } from "../../helpers/python.js";

export interface XmlElement {
  tag: string;
  attrib: Record<string, string>;
  text: string;
}

const SCRIPT = `
import sys, json, xml.etree.ElementTree as ET
root = ET.fromstring(sys.stdin.buffer.read())
out = [{"tag": e.tag.split("}")[-1], "attrib": e.attrib, "text": e.text or ""} for e in root.iter()]
print(json.dumps(out))
`;

/** Every element of the document in document order; throws with the parser's message when invalid. */
export function parseXml(xml: string): XmlElement[] {
  const r = spawnSync(jupyterPython(), ["-c", SCRIPT], { input: xml, encoding: "utf8" });
  if (r.status !== 0) throw new Error(`XML parse failed: ${r.stderr}`);
  return JSON.parse(r.stdout) as XmlElement[];
}
