#!/usr/bin/env node
import { Command, CommanderError } from 'commander';
import { createRequire } from 'node:module';
import { commands } from './commands/index.js';
import { reportError } from './util.js';

const require = createRequire(import.meta.url);
const pkg = require('../../../package.json') as { version: string };

export async function main(argv: string[]): Promise<number> {
  const program = new Command();
  program
    .name('axc')
    .description('axc: make fine-tuned transformer encoders smaller and faster, verified on your task data')
    .version(pkg.version)
    .showHelpAfterError('(run with --help for usage)')
    .exitOverride();
  for (const c of commands) c(program);
  try {
    await program.parseAsync(argv);
  } catch (e) {
    if (e instanceof CommanderError) {
      // help and version exit 0; usage errors exit 1 (commander printed the message), except for `axc diff`,
      // whose 1 means "the models differ" (like diff(1)): its errors exit 2
      if (e.exitCode === 0) return 0;
      return argv[2] === 'diff' ? 2 : 1;
    }
    return reportError(e);
  }
  return typeof process.exitCode === 'number' ? process.exitCode : 0;
}

const code = await main(process.argv);
process.exitCode = code;
