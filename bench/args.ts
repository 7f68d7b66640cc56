// Command-line options of the benchmark scripts: `--name value` pairs.

/** The value after `--name`, or `fallback` when the option is absent. */
export function arg(name: string, fallback: string): string;
export function arg(name: string): string | undefined;
export function arg(name: string, fallback?: string): string | undefined {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? process.argv[i + 1] : fallback;
}
