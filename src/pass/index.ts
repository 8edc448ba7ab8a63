export * from './types.js';
export * from './registry.js';
export * from './manager.js';
export * from './plan.js';
