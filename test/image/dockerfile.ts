// Just enough of a Dockerfile reader and a .dockerignore matcher to replay the
// image build without a container engine (test/image/image.test.ts). It
// understands what the repository's Dockerfile uses and rejects the rest
// rather than guessing: global ARGs with defaults, FROM ... AS name,
// WORKDIR, COPY [--from=stage] [--chown=...] (shell or JSON form), RUN,
// ENV/LABEL key=value pairs, USER, EXPOSE, ENTRYPOINT/CMD.
import { copyFileSync, cpSync, existsSync, lstatSync, mkdirSync, readdirSync, readlinkSync, statSync, symlinkSync } from 'node:fs';
import { dirname, join, posix } from 'node:path';

export interface Instruction {
  op: string;
  /** Text after the keyword, continuation lines joined, variables substituted. */
  args: string;
  line: number;
}

export interface Stage {
  name: string;
  base: string;
  instructions: Instruction[];
}

export interface Dockerfile {
  /** Global ARGs (before the first FROM) with their defaults. */
  args: Record<string, string>;
  stages: Stage[];
}

const KNOWN = new Set(['ARG', 'FROM', 'WORKDIR', 'COPY', 'RUN', 'ENV', 'LABEL', 'USER', 'EXPOSE', 'ENTRYPOINT', 'CMD']);

export function substitute(text: string, vars: Record<string, string>): string {
  return text.replace(/\$\{([A-Za-z_][A-Za-z0-9_]*)\}|\$([A-Za-z_][A-Za-z0-9_]*)/g, (whole, braced: string | undefined, bare: string | undefined) => {
    const name = braced ?? bare ?? '';
    return name in vars ? (vars[name] ?? '') : whole;
  });
}

export function parseDockerfile(text: string): Dockerfile {
  const logical: Array<{ text: string; line: number }> = [];
  let pending: { text: string; line: number } | undefined;
  text.split('\n').forEach((raw, i) => {
    const trimmed = raw.trim();
    if (pending === undefined && (trimmed === '' || trimmed.startsWith('#'))) return;
    if (pending !== undefined && trimmed.startsWith('#')) return; // comments inside a continued instruction
    const continued = /\\\s*$/.test(raw);
    const part = continued ? raw.replace(/\\\s*$/, '') : raw;
    pending = pending ? { text: `${pending.text} ${part.trim()}`, line: pending.line } : { text: part.trim(), line: i + 1 };
    if (!continued) {
      logical.push(pending);
      pending = undefined;
    }
  });
  if (pending) throw new Error(`Dockerfile line ${pending.line}: continuation at end of file`);

  const args: Record<string, string> = {};
  const stages: Stage[] = [];
  for (const { text: lineText, line } of logical) {
    const match = /^([A-Za-z]+)\s+(.*)$/.exec(lineText);
    if (!match) throw new Error(`Dockerfile line ${line}: cannot read "${lineText}"`);
    const op = (match[1] ?? '').toUpperCase();
    const rest = match[2] ?? '';
    if (!KNOWN.has(op)) throw new Error(`Dockerfile line ${line}: ${op} is not supported by this replay`);
    const stage = stages.at(-1);
    if (op === 'ARG' && stage === undefined) {
      const [key, value = ''] = rest.split('=', 2);
      args[(key ?? '').trim()] = value.trim();
      continue;
    }
    if (op === 'FROM') {
      const from = /^(\S+)(?:\s+AS\s+(\S+))?$/i.exec(substitute(rest, args));
      if (!from) throw new Error(`Dockerfile line ${line}: cannot read FROM ${rest}`);
      stages.push({ name: from[2] ?? String(stages.length), base: from[1] ?? '', instructions: [] });
      continue;
    }
    if (stage === undefined) throw new Error(`Dockerfile line ${line}: ${op} before FROM`);
    stage.instructions.push({ op, args: rest, line });
  }
  return { args, stages };
}

/** key=value pairs as ENV and LABEL write them (double-quoted values may hold spaces). */
export function parsePairs(text: string): Record<string, string> {
  const pairs: Record<string, string> = {};
  const re = /([A-Za-z_][A-Za-z0-9_.-]*)=("((?:[^"\\]|\\.)*)"|(\S*))\s*/gy;
  let match: RegExpExecArray | null;
  let consumed = 0;
  while ((match = re.exec(text)) !== null) {
    pairs[match[1] ?? ''] = match[3] !== undefined ? match[3].replace(/\\(.)/g, '$1') : (match[4] ?? '');
    consumed = re.lastIndex;
  }
  if (text.slice(consumed).trim() !== '') throw new Error(`cannot read key=value pairs in "${text}"`);
  return pairs;
}

/** JSON (exec) form of ENTRYPOINT/CMD/COPY; undefined for shell form. */
export function execForm(text: string): string[] | undefined {
  if (!text.trim().startsWith('[')) return undefined;
  const value = JSON.parse(text) as unknown;
  if (!Array.isArray(value) || !value.every((v) => typeof v === 'string')) throw new Error(`not a JSON string array: ${text}`);
  return value;
}

export interface CopySpec {
  from?: string;
  chown?: string;
  sources: string[];
  dest: string;
}

export function parseCopy(text: string): CopySpec {
  const words = text.trim().split(/\s+/);
  const spec: Partial<CopySpec> = {};
  while (words[0]?.startsWith('--')) {
    const flag = words.shift() ?? '';
    const [key, value] = flag.slice(2).split('=', 2);
    if (key === 'from' && value) spec.from = value;
    else if (key === 'chown' && value) spec.chown = value;
    else throw new Error(`COPY flag ${flag} is not supported by this replay`);
  }
  const rest = words.join(' ');
  const parts = execForm(rest) ?? words;
  if (parts.length < 2) throw new Error(`COPY needs a source and a destination: ${text}`);
  return { ...spec, sources: parts.slice(0, -1), dest: parts.at(-1) ?? '' };
}

// --- .dockerignore -----------------------------------------------------------

interface IgnoreRule {
  negate: boolean;
  regex: RegExp;
}

/**
 * Docker's rules: each pattern is cleaned (leading "/" and "./" dropped), is
 * relative to the context root (not matched at any depth as in .gitignore),
 * uses Go filepath.Match syntax ("*" and "?" never cross "/", "[...]"
 * classes) plus "**" for any number of directories; a pattern that matches
 * a directory excludes everything below it; "!" re-includes; the last
 * matching pattern wins.
 */
export function dockerignore(text: string): { ignored(path: string): boolean; hasExceptions: boolean } {
  const rules: IgnoreRule[] = [];
  for (const raw of text.split('\n')) {
    let pattern = raw.trim();
    if (pattern === '' || pattern.startsWith('#')) continue;
    const negate = pattern.startsWith('!');
    if (negate) pattern = pattern.slice(1).trim();
    pattern = posix.normalize(pattern).replace(/^(\.\/)+/, '').replace(/^\/+/, '').replace(/\/+$/, '');
    if (pattern === '' || pattern === '.') continue;
    rules.push({ negate, regex: globToRegex(pattern) });
  }
  const matches = (rule: IgnoreRule, path: string): boolean => {
    // The path itself, or any of its parent directories.
    const parts = path.split('/');
    for (let i = parts.length; i >= 1; i--) if (rule.regex.test(parts.slice(0, i).join('/'))) return true;
    return false;
  };
  return {
    hasExceptions: rules.some((rule) => rule.negate),
    ignored(path: string): boolean {
      let excluded = false;
      for (const rule of rules) if (matches(rule, path)) excluded = !rule.negate;
      return excluded;
    },
  };
}

function globToRegex(pattern: string): RegExp {
  let out = '';
  for (let i = 0; i < pattern.length; i++) {
    const c = pattern[i] ?? '';
    if (c === '*' && pattern[i + 1] === '*') {
      // "**/" any directories (or none); a trailing "**" anything below.
      if (pattern[i + 2] === '/') {
        out += '(?:.*/)?';
        i += 2;
      } else {
        out += '.*';
        i += 1;
      }
    } else if (c === '*') out += '[^/]*';
    else if (c === '?') out += '[^/]';
    else if (c === '[') {
      const end = pattern.indexOf(']', i + 1);
      if (end < 0) throw new Error(`unclosed [ in .dockerignore pattern ${pattern}`);
      out += `[${pattern.slice(i + 1, end).replace(/^!/, '^').replace(/\\/g, '\\\\')}]`;
      i = end;
    } else if (c === '\\' && i + 1 < pattern.length) {
      out += escapeRegex(pattern[i + 1] ?? '');
      i += 1;
    } else out += escapeRegex(c);
  }
  return new RegExp(`^${out}$`);
}

function escapeRegex(c: string): string {
  return /[.*+?^${}()|[\]\\/]/.test(c) ? `\\${c}` : c;
}

/** Copies `from` to `to` leaving out what .dockerignore excludes; returns the relative paths copied. */
export function copyContext(from: string, to: string, ignore: ReturnType<typeof dockerignore>): string[] {
  const copied: string[] = [];
  const walk = (rel: string): void => {
    const source = rel === '' ? from : join(from, rel);
    for (const entry of readdirSync(source, { withFileTypes: true })) {
      const path = rel === '' ? entry.name : `${rel}/${entry.name}`;
      const isDir = entry.isDirectory();
      // Without "!" exceptions nothing below an excluded directory can come back: skip it whole.
      if (ignore.ignored(path) && (!isDir || !ignore.hasExceptions)) continue;
      const target = join(to, path);
      if (isDir) {
        mkdirSync(target, { recursive: true });
        walk(path);
      } else if (entry.isSymbolicLink()) {
        mkdirSync(dirname(target), { recursive: true });
        symlinkSync(readlinkSync(join(from, path)), target);
        copied.push(path);
      } else if (entry.isFile()) {
        mkdirSync(dirname(target), { recursive: true });
        copyFileSync(join(from, path), target);
        copied.push(path);
      }
    }
  };
  mkdirSync(to, { recursive: true });
  walk('');
  return copied;
}

/**
 * COPY semantics: a directory source copies its contents into dest; a file
 * source goes to dest, or into it when dest ends in "/" (or several sources).
 */
export function copyInto(sourcePath: string, destPath: string, destIsDir: boolean): void {
  if (!existsSync(sourcePath)) throw new Error(`COPY source ${sourcePath} does not exist`);
  if (lstatSync(sourcePath).isDirectory()) {
    mkdirSync(destPath, { recursive: true });
    cpSync(sourcePath, destPath, { recursive: true, verbatimSymlinks: true });
    return;
  }
  const target = destIsDir || (existsSync(destPath) && statSync(destPath).isDirectory()) ? join(destPath, posix.basename(sourcePath)) : destPath;
  mkdirSync(dirname(target), { recursive: true });
  copyFileSync(sourcePath, target);
}
