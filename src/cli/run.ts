import { printable } from '../api/bounded.js';
import { UsageError } from './units.js';

type ErrorClass = abstract new (...args: never[]) => Error;

/**
 * Runs a command's main and sets the exit code: expected failures (usage
 * errors and the given error classes) end in one line on stderr; only
 * MAPLEAK_DEBUG shows stacks. 2: usage, 1: expected failure, 3: a bug.
 */
export interface Program {
  /** Prefix of error lines, e.g. "mapleak". */
  name: string;
  /** What to run for usage, e.g. "mapleak --help". */
  help: string;
}

export function runCommand(program: Program, main: (argv: string[]) => Promise<number>, expected: readonly ErrorClass[]): void {
  main(process.argv.slice(2)).then(
    (code) => {
      process.exitCode = code;
    },
    (err: unknown) => {
      process.exitCode = reportFailure(program, err, expected);
    },
  );
}

function reportFailure(program: Program, err: unknown, expected: readonly ErrorClass[]): number {
  const known = err instanceof UsageError || expected.some((type) => err instanceof type);
  const message = err instanceof Error ? err.message : String(err);
  // The first line only, printable: a capture's error can quote what a target sent.
  process.stderr.write(`${program.name}: ${printable(message.split('\n')[0] ?? '', Number.POSITIVE_INFINITY)}\n`);
  if (err instanceof UsageError) process.stderr.write(`Run '${program.help}' for usage.\n`);
  if (process.env.MAPLEAK_DEBUG && err instanceof Error) process.stderr.write(`${err.stack}\n`);
  if (err instanceof UsageError || (err as { code?: string }).code === 'ERR_PARSE_ARGS_UNKNOWN_OPTION') return 2;
  return known ? 1 : 3;
}
