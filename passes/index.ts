/**
 * Registers every pass with the registry. One pass per file, named after its DSL keyword; add a pass with one
 * import line below (keep the list sorted).
 */
export {};
import './analysis/analyze-layers.js';
import './cleanup.js';
import './cse.js';
import './decompose.js';
import './dce.js';
import './eliminate-identity.js';
import './fold-constants.js';
import './fuse.js';
import './prune.js';
import './quantize.js';
import './significance.js';
import './topk-attention.js';
import './toposort.js';
