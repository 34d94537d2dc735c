/**
 * Every audit action the code writes has a built-in audit-action entry (the event log refuses
 * any other: fail closed). Scans src/ for dotted lower-case string literals that look like action
 * ids; one that is not an action goes into NOT_AUDIT_ACTIONS, a new action into
 * AUDIT_ACTIONS (both in src/families/builtins.ts). Actions built at run time (template literals
 * with interpolation) are not seen: keep action ids literal.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { AUDIT_ACTIONS, NOT_AUDIT_ACTIONS } from '../../src/families/builtins.js';
import { isEntryId } from '../../src/families/entries.js';

function sourceFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((d) => (d.isDirectory() ? sourceFiles(join(dir, d.name)) : d.name.endsWith('.ts') ? [join(dir, d.name)] : []));
}

/** First segments of the known actions (`oci`, `identity`, …): a literal starting with one is a candidate anywhere. */
const DOMAINS = new Set(Object.keys(AUDIT_ACTIONS).map((id) => id.split('.')[0]!));

/**
 * Candidate action ids in code (comments skipped) → where they occur: dotted lower-case literals
 * (quotes, or backticks without interpolation) that start with a known domain or sit on a line
 * that mentions an action (`action:`, `appendEvent(`, a parameter named action…).
 */
function actionLiterals(): Map<string, string[]> {
  const found = new Map<string, string[]>();
  const literal = /(['"`])([a-z][a-z0-9_-]*(?:\.[a-z0-9_-]+)+)\1/g;
  for (const file of sourceFiles('src')) {
    readFileSync(file, 'utf8')
      .split('\n')
      .forEach((line, i) => {
        if (/^\s*(\*|\/\/|\/\*)/.test(line)) return;
        const code = line.replace(/\/\/.*$/, '');
        const actionLine = /action|appendEvent\(/i.test(code);
        for (const m of code.matchAll(literal)) {
          const id = m[2]!;
          if (actionLine || DOMAINS.has(id.split('.')[0]!)) found.set(id, [...(found.get(id) ?? []), `${file}:${i + 1}`]);
        }
      });
  }
  return found;
}

describe('audit-action coverage', () => {
  it('every action id written by code has a built-in audit-action entry', () => {
    const missing = [...actionLiterals()].filter(([id]) => !Object.hasOwn(AUDIT_ACTIONS, id) && !NOT_AUDIT_ACTIONS.has(id)).map(([id, where]) => `${id} (${where.join(', ')})`);
    expect(missing, `add these to AUDIT_ACTIONS (or NOT_AUDIT_ACTIONS) in src/families/builtins.ts:\n${missing.join('\n')}`).toEqual([]);
  });

  it('the action list holds valid entry ids with descriptions, and the scan sees the core actions', () => {
    for (const [id, description] of Object.entries(AUDIT_ACTIONS)) {
      expect(isEntryId(id), id).toBe(true);
      expect(description.length).toBeGreaterThan(0);
    }
    const seen = actionLiterals();
    for (const id of ['oci.manifest.push', 'oci.tag.move', 'identity.access.denied', 'family.entry.create']) expect(seen.has(id), id).toBe(true);
  });
});
