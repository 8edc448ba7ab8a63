/**
 * Registers every pass with the registry. One pass per file, named after its DSL keyword; add a pass with one
 * import line below (keep the list sorted).
 */
export {};
import './dce.js';
import './eliminate-identity.js';
import './topk-attention.js';
import './toposort.js';
