// Finds where a member's value lies in the bytes of a JSON object, so the publish path can copy a
// client's `data` bytes into the outgoing message instead of re-encoding the parsed value.
//
// The bytes must be text JSON.parse has already accepted: the scanner validates nothing, it only
// tracks strings and nesting. Every structural byte is ASCII and every byte of a UTF-8 multi-byte
// sequence is >= 0x80, so a structural byte is always what it seems. Pure; never throws.

const QUOTE = 0x22;
const BACKSLASH = 0x5c;
const COMMA = 0x2c;
const COLON = 0x3a;
const OPEN_OBJECT = 0x7b;
const CLOSE_OBJECT = 0x7d;
const OPEN_ARRAY = 0x5b;
const CLOSE_ARRAY = 0x5d;
/** Past this many bytes a string is searched with indexOf (native, about 20 ns a call) rather than byte by byte (about 1 ns a byte). */
const LONG_STRING = 16;

const isSpace = (c: number): boolean => c === 0x20 || c === 0x0a || c === 0x0d || c === 0x09;

function skipSpace(json: Buffer, i: number): number {
  while (i < json.length && isSpace(json[i]!)) i++;
  return i;
}

/** The index of the closing quote of the string whose opening quote is at `open` (json.length if none). */
function stringEnd(json: Buffer, open: number): number {
  const n = json.length;
  const short = Math.min(n, open + 1 + LONG_STRING);
  let i = open + 1;
  for (; i < short; i++) {
    const c = json[i]!;
    if (c === QUOTE) return i;
    if (c === BACKSLASH) i++;
  }
  // A long string: jump from quote to quote; one is closing when an even run of backslashes precedes it.
  for (;;) {
    const q = json.indexOf(QUOTE, i);
    if (q < 0) return n;
    let b = q - 1;
    while (json[b] === BACKSLASH) b--;
    if ((q - 1 - b) % 2 === 0) return q;
    i = q + 1;
  }
}

/** Finds the value of one named member at the top level of a JSON object; reuse one per caller. */
export class MemberSpan {
  /** The value's first byte. Valid after find() returned true. */
  start = -1;
  /** Just past the value's last byte (trailing whitespace excluded). */
  end = -1;
  /** How deeply the value nests: 0 for a string, number or literal, 1 for [] or {"a":1}, 2 for [[]]. */
  depth = 0;
  private readonly key: Buffer;
  /** The depth of the value skipValue() last skipped (a field, so skipping allocates nothing). */
  private nesting = 0;

  constructor(private readonly name: string) {
    this.key = Buffer.from(name, 'utf8');
  }

  /**
   * The last top-level member named `name` (JSON.parse keeps the last of duplicates; a key may be
   * written with escapes, "d\u0061ta"). False when the object has none or the text is no object.
   */
  find(json: Buffer): boolean {
    this.start = -1;
    let i = skipSpace(json, 0);
    if (json[i] !== OPEN_OBJECT) return false;
    i = skipSpace(json, i + 1);
    let found = false;
    while (json[i] === QUOTE) {
      const keyEnd = stringEnd(json, i);
      const named = this.isName(json, i + 1, keyEnd);
      i = skipSpace(json, keyEnd + 1);
      if (json[i] !== COLON) return false;
      const start = skipSpace(json, i + 1);
      const end = this.skipValue(json, start);
      if (named) {
        this.start = start;
        this.end = end;
        this.depth = this.nesting;
        found = true;
      }
      i = skipSpace(json, end);
      if (json[i] !== COMMA) break;
      i = skipSpace(json, i + 1);
    }
    return found;
  }

  /** The key between its quotes, json[from, to), is the name. */
  private isName(json: Buffer, from: number, to: number): boolean {
    const key = this.key;
    if (to - from === key.length) {
      // A byte loop: keys are short, and a call into native compare() costs more.
      let i = 0;
      while (i < key.length && json[from + i] === key[i]) i++;
      if (i === key.length) return true;
    }
    // Every escape is longer than what it stands for, so only a longer key with one can match;
    // decoding it is rare, so it may cost.
    if (to - from <= key.length) return false;
    const slash = json.indexOf(BACKSLASH, from);
    if (slash < 0 || slash >= to) return false;
    try {
      return JSON.parse(json.toString('utf8', from - 1, to + 1)) === this.name;
    } catch {
      return false;
    }
  }

  /** Just past the value starting at i; its depth goes to `nesting`. */
  private skipValue(json: Buffer, i: number): number {
    const n = json.length;
    const first = json[i];
    if (first === QUOTE) {
      this.nesting = 0;
      return Math.min(n, stringEnd(json, i) + 1);
    }
    if (first === OPEN_OBJECT || first === OPEN_ARRAY) {
      let depth = 1;
      let deepest = 1;
      for (let j = i + 1; j < n; j++) {
        const c = json[j]!;
        if (c === QUOTE) j = stringEnd(json, j);
        else if (c === OPEN_OBJECT || c === OPEN_ARRAY) {
          if (++depth > deepest) deepest = depth;
        } else if ((c === CLOSE_OBJECT || c === CLOSE_ARRAY) && --depth === 0) {
          this.nesting = deepest;
          return j + 1;
        }
      }
      this.nesting = deepest;
      return n;
    }
    // A number or a literal: it ends at the first delimiter.
    let j = i;
    while (j < n) {
      const c = json[j]!;
      if (c === COMMA || c === CLOSE_OBJECT || c === CLOSE_ARRAY || isSpace(c)) break;
      j++;
    }
    this.nesting = 0;
    return j;
  }
}
