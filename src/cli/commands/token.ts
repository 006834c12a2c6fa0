import { openLatchkey } from '../../latchkey.js';
import { usageError, warnUnsaved, type Command } from '../io.js';

export const command: Command = {
  summary: 'print a fresh access token (only the token and a newline)',
  usage: 'latchkey token <source>',
  async run(args, io) {
    if (args.length !== 1 || args[0]!.startsWith('-')) throw usageError(`usage: ${this.usage}`);
    const source = args[0]!;
    const lk = await openLatchkey({ env: io.env });
    let token: string;
    try {
      token = await lk.token(source);
    } finally {
      await lk.close();
    }
    io.stdout.write(`${token}\n`);
    warnUnsaved(lk, [source], io);
    return 0;
  },
};
