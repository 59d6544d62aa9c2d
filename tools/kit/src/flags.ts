// Command-line flags for the tools: `--name=value` and `--name value` alike, booleans as `--name`;
// an unknown flag or a missing value is an error the caller prints with its usage line.
export type FlagKind = 'string' | 'boolean';

export interface ParsedFlags {
  /** Each flag given, by name (without the dashes): its value, or true for a boolean. */
  readonly values: ReadonlyMap<string, string | true>;
  /** Arguments that are not flags, in order. */
  readonly positional: readonly string[];
}

export type FlagResult = { readonly ok: true; readonly flags: ParsedFlags } | { readonly ok: false; readonly error: string };

export function parseFlags(argv: readonly string[], spec: Readonly<Record<string, FlagKind>>): FlagResult {
  const values = new Map<string, string | true>();
  const positional: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (arg === '--') {
      positional.push(...argv.slice(i + 1));
      break;
    }
    if (!arg.startsWith('--')) {
      if (arg.startsWith('-') && arg !== '-') return { ok: false, error: `unknown flag ${arg}` };
      positional.push(arg);
      continue;
    }
    const eq = arg.indexOf('=');
    const name = arg.slice(2, eq < 0 ? undefined : eq);
    const kind = Object.hasOwn(spec, name) ? spec[name] : undefined;
    if (kind === undefined) return { ok: false, error: `unknown flag --${name}` };
    if (kind === 'boolean') {
      if (eq >= 0) return { ok: false, error: `--${name} takes no value` };
      values.set(name, true);
      continue;
    }
    let value: string | undefined;
    if (eq >= 0) value = arg.slice(eq + 1);
    else if (i + 1 < argv.length && !argv[i + 1]!.startsWith('--')) value = argv[++i];
    if (value === undefined || value === '') return { ok: false, error: `--${name} needs a value` };
    values.set(name, value);
  }
  return { ok: true, flags: { values, positional } };
}
