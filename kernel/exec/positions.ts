// Jupyter counts cursor positions in Unicode code points (messaging 5.2+); JavaScript strings
// index UTF-16 code units. These convert between the two.
export function codePointsToUtf16(text: string, cursor: number): number {
  let units = 0;
  for (let points = 0; points < cursor && units < text.length; points++) {
    const c = text.codePointAt(units)!;
    units += c > 0xffff ? 2 : 1;
  }
  return units;
}

export function utf16ToCodePoints(text: string, offset: number): number {
  return [...text.slice(0, offset)].length;
}
