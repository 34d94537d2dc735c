import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { FsDriver } from '../../src/data/fs-driver.js';
import { driverSuite } from './driver-suite.js';

driverSuite('fs', async () => {
  const root = await mkdtemp(join(tmpdir(), 'fs-driver-'));
  const driver = new FsDriver({ root });
  return {
    driver,
    reopen: async () => new FsDriver({ root }),
    cleanup: async () => {
      await driver.close();
      await rm(root, { recursive: true, force: true });
    },
  };
});
