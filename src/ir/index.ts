export * from './dtype.js';
export * from './tensor.js';
export * from './core.js';
export * from './checker.js';
export * from './printer.js';
export * from './builder.js';
export * from './stats.js';
