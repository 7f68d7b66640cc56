#!/usr/bin/env node
// Draws the kernelspec logos (logo-32x32.png, logo-64x64.png) without image libraries: a
// TypeScript-blue rounded square with "ts" in a 5x7 pixel font, encoded as PNG with zlib.
// Run: node kernelspec/make-logos.mjs (the PNGs are committed; rerun after changing this file).
import { writeFileSync } from "node:fs";
import { deflateSync } from "node:zlib";

const BLUE = [49, 120, 198, 255]; // #3178C6, TypeScript's blue
const WHITE = [255, 255, 255, 255];
const CLEAR = [0, 0, 0, 0];
const GLYPHS = {
  t: ["01000", "01000", "11110", "01000", "01000", "01001", "00110"],
  s: ["00000", "00000", "01111", "10000", "01110", "00001", "11110"],
};

function crc32(buf) {
  let c = ~0;
  for (const b of buf) {
    c ^= b;
    for (let k = 0; k < 8; k++) c = (c >>> 1) ^ (0xedb88320 & -(c & 1));
  }
  return ~c >>> 0;
}

function chunk(type, data) {
  const len = Buffer.alloc(4);
  len.writeUInt32BE(data.length);
  const body = Buffer.concat([Buffer.from(type, "ascii"), data]);
  const crc = Buffer.alloc(4);
  crc.writeUInt32BE(crc32(body));
  return Buffer.concat([len, body, crc]);
}

function png(size, pixel) {
  const rows = [];
  for (let y = 0; y < size; y++) {
    const row = Buffer.alloc(1 + size * 4);
    for (let x = 0; x < size; x++) Buffer.from(pixel(x, y)).copy(row, 1 + x * 4);
    rows.push(row);
  }
  const header = Buffer.alloc(13);
  header.writeUInt32BE(size, 0);
  header.writeUInt32BE(size, 4);
  header.set([8, 6, 0, 0, 0], 8); // 8-bit RGBA
  return Buffer.concat([
    Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
    chunk("IHDR", header),
    chunk("IDAT", deflateSync(Buffer.concat(rows))),
    chunk("IEND", Buffer.alloc(0)),
  ]);
}

function logo(size) {
  const radius = size / 6;
  const scale = Math.floor(size / 14);
  const textWidth = (5 * 2 + 1) * scale;
  const left = Math.round(size - textWidth - size / 8);
  const top = Math.round(size - 7 * scale - size / 8);
  return png(size, (x, y) => {
    const cx = Math.min(Math.max(x + 0.5, radius), size - radius);
    const cy = Math.min(Math.max(y + 0.5, radius), size - radius);
    if ((x + 0.5 - cx) ** 2 + (y + 0.5 - cy) ** 2 > radius ** 2) return CLEAR;
    const gx = Math.floor((x - left) / scale);
    const gy = Math.floor((y - top) / scale);
    if (gy >= 0 && gy < 7 && x >= left) {
      const glyph = gx < 5 ? GLYPHS.t : gx >= 6 && gx < 11 ? GLYPHS.s : undefined;
      const col = gx < 5 ? gx : gx - 6;
      if (glyph && glyph[gy][col] === "1") return WHITE;
    }
    return BLUE;
  });
}

const dir = new URL(".", import.meta.url);
for (const size of [32, 64]) writeFileSync(new URL(`logo-${size}x${size}.png`, dir), logo(size));
console.log("wrote logo-32x32.png and logo-64x64.png");
