import { type Model } from './core.js';
import { DataType, dtypeName } from './dtype.js';
import { allNodes } from './core.js';

export interface ModelStats {
  nodes: number;
  ops: Record<string, number>;
  /** Elements of initializers that are weights (float, int8/uint8, int4... but not int64/int32 shape constants). */
  parameters: number;
  /** Bytes of initializer data, by element type name. */
  bytesByType: Record<string, number>;
  paramsByType: Record<string, number>;
  initializerBytes: number;
  largest: { name: string; dtype: string; dims: number[]; bytes: number }[];
}

const SHAPE_TYPES = new Set([DataType.INT64, DataType.INT32, DataType.BOOL, DataType.STRING]);

export function modelStats(m: Model, largestCount = 10): ModelStats {
  const ops: Record<string, number> = {};
  let nodes = 0;
  for (const n of allNodes(m.graph)) {
    nodes++;
    ops[n.qualifiedOp] = (ops[n.qualifiedOp] ?? 0) + 1;
  }
  let parameters = 0;
  let initializerBytes = 0;
  const bytesByType: Record<string, number> = {};
  const paramsByType: Record<string, number> = {};
  const all: ModelStats['largest'] = [];
  for (const v of m.graph.initializers) {
    const t = v.constValue!;
    const dt = dtypeName(t.dataType);
    const bytes = t.byteLength;
    initializerBytes += bytes;
    bytesByType[dt] = (bytesByType[dt] ?? 0) + bytes;
    if (!SHAPE_TYPES.has(t.dataType)) {
      parameters += t.numElements;
      paramsByType[dt] = (paramsByType[dt] ?? 0) + t.numElements;
    }
    all.push({ name: v.name, dtype: dt, dims: [...t.dims], bytes });
  }
  all.sort((a, b) => b.bytes - a.bytes || a.name.localeCompare(b.name));
  const sortedOps = Object.fromEntries(Object.entries(ops).sort(([a, x], [b, y]) => y - x || a.localeCompare(b)));
  return {
    nodes,
    ops: sortedOps,
    parameters,
    bytesByType,
    paramsByType,
    initializerBytes,
    largest: all.slice(0, largestCount),
  };
}
