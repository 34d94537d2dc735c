/**
 * Writing the built-in family entries at start-up survives a transient storage failure: it is
 * retried with backoff, not left until the next start (three replicas seeding one s3rver bucket
 * together lost an upload session's marker to s3rver's directory clean-up, and every family
 * route then answered without the built-ins).
 */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { FsDriver } from '../../src/data/fs-driver.js';
import { UploadNotFoundError } from '../../src/data/errors.js';
import { builtinEntries } from '../../src/families/builtins.js';
import { Catalogue } from '../../src/families/catalogue.js';
import { FamilyStore } from '../../src/families/store.js';
import { createLogger } from '../../src/log.js';
import { openDatabase } from '../../src/meta/db.js';
import { RegistryStore } from '../../src/meta/registry-store.js';
import { removeDir } from '../helpers/registry.js';

const dir = mkdtempSync(join(tmpdir(), 'as-families-seed-'));
const db = openDatabase(join(dir, 'metadata.db'));
afterAll(() => {
  db.$client.close();
  removeDir(dir);
});

describe('seeding the built-in entries', () => {
  it('retries after its upload sessions vanish, and writes every entry', async () => {
    const driver = new FsDriver({ root: join(dir, 'blobs'), fsync: false });
    let failures = 3;
    // The first appends find their session gone, as when another writer removed it.
    const append = driver.append.bind(driver);
    driver.append = async (id, state, source) => {
      if (failures > 0) {
        failures--;
        throw new UploadNotFoundError(id);
      }
      return append(id, state, source);
    };
    const catalogue = new Catalogue(db, new RegistryStore(db), driver, createLogger('silent'));
    const written = await catalogue.seed();
    expect(failures).toBe(0);
    expect(written).toBe(builtinEntries().length);
    const store = new FamilyStore(db);
    for (const b of builtinEntries()) expect(store.head(b.family, b.entry.id), `${b.family}/${b.entry.id}`).toBeTruthy();
  }, 30_000);
});
