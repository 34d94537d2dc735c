/**
 * First start with no administrator (as Jenkins and Argo CD do): create `admin` with a random
 * password written once to `<dataDir>/initial-admin-password` (0600), so `npm start` gives a
 * registry someone can log in to. The log names the file, never the secret. An administrator
 * created earlier (the CLI bootstrap, for automation) means nothing happens; changing the
 * admin's password removes the file.
 */
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import type { Logger } from 'pino';
import { createUserAccount } from './auth/accounts.js';
import { IdentityStore } from './auth/identity-store.js';
import { verifyPassword } from './auth/secrets.js';
import type { Db } from './meta/db.js';

export const INITIAL_ADMIN = 'admin';
export const initialPasswordFile = (dataDir: string): string => join(resolve(dataDir), 'initial-admin-password');

/** What to watch afterwards: the password hash the file's secret belongs to, if the file is live. */
export interface FirstRunState {
  file: string;
  passwordHash: string;
}

export async function ensureInitialAdmin(db: Db, dataDir: string, log: Logger): Promise<FirstRunState | undefined> {
  const identities = new IdentityStore(db);
  const file = initialPasswordFile(dataDir);
  if (identities.countAdmins() > 0) return checkExistingFile(identities, file, log);
  if (identities.principalByName(INITIAL_ADMIN)) {
    log.warn(`no administrator, and the name "${INITIAL_ADMIN}" is taken: create one with \`npx artifact-store user create <name> --admin --password-stdin\``);
    return undefined;
  }
  const password = randomBytes(18).toString('base64url');
  // The file first (via a fresh 0600 temp file and a rename, so it is never half-written or
  // wider than 0600), then the account: a crash in between leaves a file but no admin, and the
  // next start simply writes a new one.
  const tmp = `${file}.${process.pid}.tmp`;
  // With metadata in PostgreSQL nothing has created the data directory yet (SQLite's open does).
  mkdirSync(dirname(file), { recursive: true, mode: 0o700 });
  writeFileSync(tmp, `${password}\n`, { mode: 0o600, flag: 'wx' });
  renameSync(tmp, file);
  try {
    const row = await createUserAccount(identities, INITIAL_ADMIN, password, true, 'system:first-run', true);
    log.warn({ user: INITIAL_ADMIN, passwordFile: file }, `first run: created administrator "${INITIAL_ADMIN}"; its password is in ${file} (readable only by this user). Change it (PUT /api/v1/users/${INITIAL_ADMIN}/password) and the file is removed.`);
    return { file, passwordHash: row.passwordHash! };
  } catch (err) {
    rmSync(file, { force: true });
    // Replicas starting together on a fresh PostgreSQL: another process created it first.
    if (identities.principalByName(INITIAL_ADMIN)) {
      log.warn(`first run: another registry process created the administrator "${INITIAL_ADMIN}" at the same moment; its password is in that process's data directory (initial-admin-password)`);
      return undefined;
    }
    throw err;
  }
}

/** A leftover file whose password no longer logs in is removed (the password was changed while we were down). */
async function checkExistingFile(identities: IdentityStore, file: string, log: Logger): Promise<FirstRunState | undefined> {
  if (!existsSync(file)) return undefined;
  const admin = identities.principalByName(INITIAL_ADMIN);
  const secret = readFileSync(file, 'utf8').replace(/\r?\n$/, '');
  if (admin?.kind === 'user' && admin.passwordHash && (await verifyPassword(secret, admin.passwordHash))) return { file, passwordHash: admin.passwordHash };
  rmSync(file, { force: true });
  log.info({ passwordFile: file }, 'removed the initial admin password file: that password no longer works');
  return undefined;
}

/**
 * Removes the file once the admin's password hash changes (by API or CLI, this process or
 * another): a cheap indexed read every few seconds, stopped as soon as the file is gone.
 */
export function watchInitialPassword(db: Db, state: FirstRunState, log: Logger, everyMs = 2000): () => void {
  const identities = new IdentityStore(db);
  const timer = setInterval(() => {
    try {
      const admin = identities.principalByName(INITIAL_ADMIN);
      if (admin?.passwordHash === state.passwordHash && existsSync(state.file)) return;
      rmSync(state.file, { force: true });
      clearInterval(timer);
      log.info({ passwordFile: state.file }, 'the initial admin password was changed: removed its file');
    } catch (err) {
      log.warn({ err }, 'first run: could not check the initial admin password');
    }
  }, everyMs);
  timer.unref();
  return () => clearInterval(timer);
}
