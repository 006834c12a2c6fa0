#!/usr/bin/env node
import { main } from './main.js';
import { processIO, reportError } from './io.js';

// A fixed title: argv may hold URLs or paths the operator would rather not show in `ps`.
process.title = 'latchkey';
main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (err: unknown) => {
    process.exitCode = reportError(err, processIO());
  },
);
