export * from './data.js';
export * from './runner.js';
export * from './compare.js';
export * from './golden.js';
export * from './provider.js';
