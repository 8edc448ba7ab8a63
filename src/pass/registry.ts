import type { AnyPass } from './types.js';

/** The pass registry: pass metadata by DSL keyword. Passes register themselves from passes/index.ts. */
const REGISTRY = new Map<string, AnyPass>();

export function registerPass(p: AnyPass): void {
  if (REGISTRY.has(p.name)) throw new Error(`pass '${p.name}' registered twice`);
  REGISTRY.set(p.name, p);
}

export function getPass(name: string): AnyPass | undefined {
  return REGISTRY.get(name);
}

/** Every registered pass, sorted by name (deterministic). */
export function allPasses(): AnyPass[] {
  return [...REGISTRY.values()].sort((a, b) => a.name.localeCompare(b.name));
}

/** Fill defaults for options not given. */
export function withDefaults(p: AnyPass, options: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [k, spec] of Object.entries(p.options)) if (spec.default !== undefined) out[k] = spec.default;
  return { ...out, ...options };
}
