import { openLatchkey } from '../../latchkey.js';
import { usageError, type Command } from '../io.js';

export const command: Command = {
  summary: 'print a fresh access token (only the token and a newline)',
  usage: 'latchkey token <source>',
  async run(args, io) {
    if (args.length !== 1 || args[0]!.startsWith('-')) throw usageError(`usage: ${this.usage}`);
    const lk = await openLatchkey({ env: io.env });
    const token = await lk.token(args[0]!);
    io.stdout.write(`${token}\n`);
    return 0;
  },
};
