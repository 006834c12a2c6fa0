import { mkdir, unlink } from 'node:fs/promises';
import { dirname } from 'node:path';
import { isRelativeFileRef, SECRET_REF, secretRefProblem } from '../../config/constants.js';
import { resolveSecretRef } from '../../config/secret-ref.js';
import { ExitCode, LatchkeyError } from '../../core/errors.js';
import { Secret } from '../../core/secret.js';
import { writeFileAtomic } from '../../store/atomic-file.js';
import { usageError, type CliIO, type Command } from '../io.js';

/** Largest value `set` accepts (a token, a key, a PEM file; not a database dump). */
export const MAX_SECRET_BYTES = 1024 * 1024;

const USAGE = `latchkey secrets set <ref>             store a value: read from stdin, or typed at a hidden prompt on a terminal
       latchkey secrets get <ref> [--reveal]  check that <ref> resolves (prints its length); --reveal prints the value
       latchkey secrets rm <ref>              delete the keyring entry or the file
  <ref> is keyring:service/account or file:/absolute/path. env:NAME references are read-only here:
  set the variable in the environment of the process that uses it.
  The value is never taken from the command line (it would end up in shell history and \`ps\`).
  examples: pbpaste | latchkey secrets set keyring:latchkey/hubspot-pat
            latchkey secrets set file:/etc/latchkey/github-token     (then paste at the prompt)`;

export const command: Command = {
  summary: 'store, check or remove a secret behind a reference (keyring:, file:)',
  usage: USAGE,
  async run(args, io) {
    const { sub, ref, reveal } = parse(args);
    switch (sub) {
      case 'set':
        return setSecret(ref, io);
      case 'get':
        return getSecret(ref, reveal, io);
      case 'rm':
        return removeSecret(ref, io);
    }
  },
};

interface Parsed {
  sub: 'set' | 'get' | 'rm';
  ref: string;
  reveal: boolean;
}

/**
 * Our own parsing, because the usual parsers echo what they reject, and what a person puts
 * in the wrong place here is often the secret itself.
 */
function parse(args: string[]): Parsed {
  let reveal = false;
  const positionals: string[] = [];
  let unknownOptions = 0;
  for (const a of args) {
    if (a === '--reveal') reveal = true;
    else if (a.startsWith('-') && a !== '-') unknownOptions += 1;
    else positionals.push(a);
  }
  const [sub, ref, ...extra] = positionals;
  if (sub !== 'set' && sub !== 'get' && sub !== 'rm') {
    throw usageError(`expected a subcommand: set, get or rm\nusage: ${USAGE}`);
  }
  if (unknownOptions > 0) {
    throw usageError(`secrets ${sub}: ${unknownOptions} unknown option(s) (not shown, in case one held a secret); the only option is --reveal for \`get\`. Nothing was changed.`);
  }
  if (reveal && sub !== 'get') throw usageError(`--reveal applies only to \`secrets get\``);
  if (ref === undefined) throw usageError(`secrets ${sub}: expected a secret reference (keyring:service/account or file:/path)\nusage: ${USAGE}`);
  if (extra.length > 0) {
    throw usageError(
      `secrets ${sub}: expected exactly one argument, the reference; got ${extra.length} more (not shown). ` +
        (sub === 'set'
          ? 'The value is never taken from the command line: pipe it on stdin or type it at the prompt. Nothing was stored.'
          : 'Nothing was changed.'),
    );
  }
  if (isRelativeFileRef(ref)) throw usageError(`secrets ${sub}: ${secretRefProblem(ref)}; nothing was changed`);
  if (!SECRET_REF.test(ref)) {
    throw usageError(`secrets ${sub}: ${describeNonRef(ref)} is not a secret reference (keyring:service/account or file:/absolute/path); if it was the secret itself, it was not stored or printed`);
  }
  return { sub, ref, reveal };
}

/** Names a would-be reference without echoing it whole (it may be the secret). */
function describeNonRef(value: string): string {
  const scheme = /^([a-z]+):/.exec(value)?.[1];
  return scheme ? `"${scheme}:…" (${value.length} chars)` : `the argument (${value.length} chars)`;
}

async function setSecret(ref: string, io: CliIO): Promise<number> {
  if (ref.startsWith('env:')) throw envReadOnly(ref);
  const value = await readValue(ref, io);
  if (ref.startsWith('keyring:')) {
    const { writeKeyringSecret } = await import('../../config/keyring.js');
    await writeKeyringSecret(ref, value, { env: io.env });
  } else {
    const path = ref.slice('file:'.length);
    try {
      await mkdir(dirname(path), { recursive: true, mode: 0o700 });
      // Same bytes `resolveSecretRef` strips back off: one trailing newline.
      await writeFileAtomic(path, `${value.reveal()}\n`, 0o600);
    } catch (err) {
      throw new LatchkeyError('LK_USAGE', `secret reference ${ref}: cannot write ${path} (${(err as NodeJS.ErrnoException).code ?? 'error'}); nothing was stored`);
    }
  }
  // Read it back the way every consumer will, so "stored" means "resolves".
  const back = await resolveSecretRef(ref, io.env);
  if (!back.equals(value)) {
    throw new LatchkeyError('LK_KEYRING', `secret reference ${ref}: the value read back differs from the value written; check the store behind it`);
  }
  io.stdout.write(`stored ${ref} (${value.length} characters)\n`);
  return ExitCode.ok;
}

async function getSecret(ref: string, reveal: boolean, io: CliIO): Promise<number> {
  let value: Secret;
  try {
    value = await resolveSecretRef(ref, io.env);
  } catch (err) {
    if (err instanceof LatchkeyError) {
      const fix = ref.startsWith('env:') ? `export ${ref.slice(4)}=… in the environment that runs latchkey` : `latchkey secrets set ${ref}`;
      throw new LatchkeyError(err.code, err.message, { operatorAction: err.operatorAction ?? 'replace_token', exitCode: ExitCode.actionRequired, fix: err.fix ?? fix, cause: err });
    }
    throw err;
  }
  if (reveal) io.stdout.write(`${value.reveal()}\n`);
  else io.stdout.write(`${ref} resolves (${value.length} characters); add --reveal to print the value\n`);
  return ExitCode.ok;
}

async function removeSecret(ref: string, io: CliIO): Promise<number> {
  if (ref.startsWith('env:')) throw envReadOnly(ref);
  let removed: boolean;
  if (ref.startsWith('keyring:')) {
    const { deleteKeyringSecret } = await import('../../config/keyring.js');
    removed = await deleteKeyringSecret(ref, { env: io.env });
  } else {
    const path = ref.slice('file:'.length);
    try {
      await unlink(path);
      removed = true;
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code !== 'ENOENT') throw new LatchkeyError('LK_USAGE', `secret reference ${ref}: cannot remove ${path} (${code ?? 'error'})`);
      removed = false;
    }
  }
  io.stdout.write(removed ? `removed ${ref}\n` : `${ref}: nothing to remove\n`);
  return ExitCode.ok;
}

function envReadOnly(ref: string): LatchkeyError {
  const name = ref.slice(4);
  return usageError(
    `${ref} is read from the environment of the process that uses it; latchkey cannot set it for other processes. ` +
      `Set ${name} where that process starts (its service unit, cron line or shell profile), or use a keyring: or file: reference and \`latchkey secrets set\``,
  );
}

// ---- reading the value -------------------------------------------------------------------

interface TtyInput extends NodeJS.ReadableStream {
  isTTY?: boolean;
  setRawMode?: (mode: boolean) => unknown;
}

/** The value from stdin (piped) or a hidden prompt (terminal); never from argv. */
async function readValue(ref: string, io: CliIO): Promise<Secret> {
  const stdin = io.stdin as TtyInput;
  const text = stdin.isTTY && typeof stdin.setRawMode === 'function' ? await promptHidden(stdin, io.stderr, `value for ${ref} (input hidden)`) : await readAll(stdin);
  // A piped value usually ends with one newline (echo, a file): that is not part of it.
  const value = text.replace(/\r?\n$/, '');
  if (value === '') throw usageError(`secrets set ${ref}: the value is empty; nothing was stored`);
  if (value.includes('\0')) throw usageError(`secrets set ${ref}: the value contains a NUL byte; nothing was stored`);
  return new Secret(value);
}

async function readAll(stream: NodeJS.ReadableStream): Promise<string> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of stream) {
    const buf = typeof chunk === 'string' ? Buffer.from(chunk) : Buffer.from(chunk as Uint8Array);
    size += buf.length;
    if (size > MAX_SECRET_BYTES) throw usageError(`the value on stdin is larger than ${MAX_SECRET_BYTES} bytes; nothing was stored`);
    chunks.push(buf);
  }
  return Buffer.concat(chunks).toString('utf8');
}

/**
 * Reads one line from a terminal in raw mode without echoing it. Backspace and Ctrl-U edit,
 * Enter ends, Ctrl-C and Ctrl-D on an empty line cancel; escape sequences (arrow keys) are
 * dropped. The terminal is restored however it ends.
 */
export function promptHidden(stdin: TtyInput, stderr: NodeJS.WritableStream, label: string): Promise<string> {
  stderr.write(`${label}: `);
  stdin.setRawMode?.(true);
  stdin.setEncoding('utf8');
  stdin.resume();
  return new Promise<string>((resolve, reject) => {
    let chars: string[] = [];
    let escape: 'none' | 'esc' | 'csi' = 'none';
    const finish = (): void => {
      stdin.removeListener('data', onData);
      stdin.removeListener('end', onEnd);
      stdin.setRawMode?.(false);
      stdin.pause();
      stderr.write('\n');
    };
    const cancel = (): void => {
      finish();
      reject(usageError('cancelled; nothing was stored'));
    };
    const onEnd = (): void => {
      finish();
      if (chars.length === 0) reject(usageError('no value entered; nothing was stored'));
      else resolve(chars.join(''));
    };
    const onData = (chunk: string | Buffer): void => {
      for (const ch of typeof chunk === 'string' ? chunk : chunk.toString('utf8')) {
        if (escape === 'esc') {
          escape = ch === '[' || ch === 'O' ? 'csi' : 'none';
          continue;
        }
        if (escape === 'csi') {
          if (ch >= '@' && ch <= '~') escape = 'none';
          continue;
        }
        if (ch === '\r' || ch === '\n') {
          finish();
          resolve(chars.join(''));
          return;
        }
        if (ch === '\u0003') return cancel(); // Ctrl-C
        if (ch === '\u0004') {
          // Ctrl-D: end of input (cancel when nothing was typed)
          if (chars.length === 0) return cancel();
          finish();
          resolve(chars.join(''));
          return;
        }
        if (ch === '\u007f' || ch === '\b') {
          chars = chars.slice(0, -1);
          continue;
        }
        if (ch === '\u0015') {
          chars = [];
          continue;
        }
        if (ch === '\u001b') {
          escape = 'esc';
          continue;
        }
        if (ch < ' ') continue; // other control characters (Tab included) are not part of a secret
        chars.push(ch);
      }
    };
    stdin.on('data', onData);
    stdin.on('end', onEnd);
  });
}
