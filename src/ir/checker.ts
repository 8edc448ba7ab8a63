import { diag, nodeLoc, type Diagnostic } from '../diagnostics/index.js';
import { type Graph, type Model, type Node, type Value } from './core.js';

/**
 * IR invariants, returned as diagnostics (never thrown): every input is defined before use, use lists agree with
 * node inputs, value and node names are unique, graph outputs are defined, and every domain used has an opset import.
 * Codes: AX1101 undefined input, AX1102 use before definition, AX1103 use list out of sync, AX1104 duplicate name,
 * AX1105 undefined graph output, AX1106 missing opset import, AX1107 initializer without data.
 */
export function checkModel(m: Model): Diagnostic[] {
  const out: Diagnostic[] = [];
  const domains = new Set<string>();
  checkGraph(m.graph, new Set(), out, domains);
  for (const d of domains) {
    const key = d === 'ai.onnx' ? '' : d;
    if (!m.opsetImports.has(key))
      out.push(diag('AX1106', 'error', `domain '${d || 'ai.onnx'}' is used but the model imports no opset for it`));
  }
  return out;
}

function checkGraph(g: Graph, outer: Set<Value>, out: Diagnostic[], domains: Set<string>): void {
  const defined = new Set<Value>(outer);
  const names = new Map<string, string>();
  const claim = (name: string, what: string, node?: Node) => {
    if (!name) return;
    const prev = names.get(name);
    if (prev)
      out.push(
        diag(
          'AX1104',
          'error',
          `name '${name}' is used by ${prev} and by ${what}`,
          node ? nodeLoc(node.name, node.qualifiedOp, g.name) : undefined,
        ),
      );
    else names.set(name, what);
  };
  for (const v of g.inputs) {
    defined.add(v);
    claim(v.name, `graph input '${v.name}'`);
  }
  for (const v of g.initializers) {
    if (!v.constValue) out.push(diag('AX1107', 'error', `initializer '${v.name}' has no tensor`));
    if (!defined.has(v)) claim(v.name, `initializer '${v.name}'`);
    defined.add(v);
  }
  for (const v of g.sparseInitializers) defined.add(v);
  const nodeNames = new Set<string>();
  for (const n of g) {
    domains.add(n.domain);
    n.inputs.forEach((v, i) => {
      if (!v) return;
      if (!defined.has(v)) {
        const loc = nodeLoc(n.name, n.qualifiedOp, g.name);
        if (v.producer()?.graph === g)
          out.push(
            diag(
              'AX1102',
              'error',
              `input ${i} '${v.name}' of ${n.label()} is used before the node that produces it`,
              loc,
            ),
          );
        else out.push(diag('AX1101', 'error', `input ${i} '${v.name}' of ${n.label()} is not defined`, loc));
      }
      if (!v.uses().some((u) => u.node === n && u.index === i))
        out.push(
          diag(
            'AX1103',
            'error',
            `use list of '${v.name}' does not record input ${i} of ${n.label()}`,
            nodeLoc(n.name, n.qualifiedOp, g.name),
          ),
        );
    });
    for (const sg of n.subgraphs()) checkGraph(sg, defined, out, domains);
    if (n.name) {
      if (nodeNames.has(n.name))
        out.push(
          diag(
            'AX1104',
            'warning',
            `node name '${n.name}' is used by more than one node`,
            nodeLoc(n.name, n.qualifiedOp, g.name),
          ),
        );
      nodeNames.add(n.name);
    }
    n.outputs.forEach((o) => {
      if (o.producer() !== n)
        out.push(diag('AX1103', 'error', `output '${o.name}' of ${n.label()} names another producer`));
      claim(o.name, `output of ${n.label()}`, n);
      defined.add(o);
      for (const u of o.uses())
        if (u.node.inputs[u.index] !== o)
          out.push(
            diag(
              'AX1103',
              'error',
              `use list of '${o.name}' records input ${u.index} of ${u.node.label()}, which is another value`,
            ),
          );
    });
  }
  for (const v of g.outputs)
    if (!defined.has(v)) out.push(diag('AX1105', 'error', `graph output '${v.name}' is not defined`));
}
