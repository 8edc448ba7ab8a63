/**
 * Diagnostic codes of the plan language. Stable: tests keep one bad plan per code in golden/plans/bad/.
 * AX20xx syntax, AX21xx names, options and values, AX22xx the plan against the model and its data,
 * AX23xx step order.
 */
export const PLAN_CODES: Record<string, string> = {
  AX2001: 'unexpected character',
  AX2002: 'unterminated string',
  AX2003: 'expected a different token',
  AX2004: 'unexpected token in a statement',
  AX2005: 'unexpected input after the end of the plan',
  AX2101: 'unknown pass',
  AX2102: 'unknown option (or a clause the pass does not take)',
  AX2103: 'wrong value type',
  AX2104: 'value out of range',
  AX2105: 'unknown enum value (data format, split, option value, verify metric)',
  AX2106: 'unknown data source',
  AX2107: 'duplicate data name',
  AX2108: 'option given twice',
  AX2109: 'missing required option or value',
  AX2110: 'value without an option name',
  AX2111: 'ambiguous bare word (a value of several options)',
  AX2201: 'layer the model does not have',
  AX2202: "data fields that do not match the model's inputs",
  AX2203: 'data file not found (warning)',
  AX2204: 'verify names an output the model does not have',
  AX2301: 'a step requires a fact that no earlier step provides',
  AX2302: 'data source declared but never used (warning)',
};
