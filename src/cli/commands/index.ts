import type { Command } from 'commander';
import { register as compile } from './compile.js';
import { register as inspect } from './inspect.js';
import './inspect-layers.js';
import { register as convert } from './convert.js';
import { register as golden } from './golden.js';
import { register as check } from './check.js';
import { register as passes } from './passes.js';
import { register as bench } from './bench.js';
import { register as diff } from './diff.js';

/** Every CLI command, in the order `axc --help` lists them. Add a command: a file here and a line below. */
export const commands: ((program: Command) => void)[] = [compile, inspect, convert, golden, check, passes, bench, diff];
