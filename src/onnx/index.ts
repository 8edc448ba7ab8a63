export * from './decode.js';
export * from './encode.js';
export * from './io.js';
export { DecodeError, Message, WireReader } from './wire.js';
