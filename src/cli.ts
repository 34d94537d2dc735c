/**
 * Operator CLI: bootstrap and manage identities directly in the data directory's database
 * (the server may be running: SQLite WAL allows it). Usage: `npm run cli -- <command>`.
 */
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { createApiKey, createUserAccount, validatePrincipalName } from './auth/accounts.js';
import { IdentityStore } from './auth/identity-store.js';
import type { KeyScope, Role } from './auth/permissions.js';
import { loadConfig } from './config/index.js';
import { configProblem } from './startup-errors.js';
import { metadataTarget, openDatabase } from './meta/db.js';
import { verifyChain } from './meta/events.js';
import { isValidName } from './core/names.js';

const USAGE = `usage: artifact-store <command>
  serve                                               run the registry (same as \`npm start\`)
  user create <name> [--admin] [--password-stdin]   prompted without echo on a terminal; --password-stdin reads it from stdin
  user list                                           every user: name, administrator, disabled, created
  user password <name> [--password-stdin]             set a new password (the reset; voids the user's tokens)
  user delete <name>                                  delete a user with their API keys and memberships (refused while their namespace has content or they alone own an organisation)
  org create <name> --owner <user>
  org list                                            every organisation with its owners
  org delete <name>                                   delete an organisation (refused while it has repositories with content, delegated families or webhooks)
  org member <org> <user> <owner|maintainer|reader|remove>
  key create <user> --name <label> --scope <read,publish,admin> [--repo <pattern>]... [--expires-in <seconds>]
  key revoke <id>
  repo visibility <repository> <public|private>
  events verify [--public-key <pem file>]            check the event log's hash chain and signed checkpoints
  events rebuild --into <new.db>                      replay the log into a fresh database
  events check                                        rebuild in a temp database and compare with the live tables (exit 1 on a difference)
  db migrate-to-postgres --from <metadata.db> [--to postgres://…]
                                                      copy a SQLite registry's metadata into an empty PostgreSQL database (default: databaseUrl), then verify it
  backup <dir>                                        online copy of the database, blobs (fs or S3) and signing keys into a new directory; GC waits meanwhile
  gc [--dry-run]                                      garbage-collect unreferenced content (JSON report)
  bundle publish <repository> <digest>                register a bundle (needs a PASS gate receipt)
  bundle transition <id> <version> <to> [--reason R]  CANDIDATE, APPROVED, REJECTED, RETIRED
  bundle activate <id> <version> <environment> <model_family> [--tenant T] [--reason R]
  bundle rollback <environment> <model_family> [--tenant T] [--reason R]
  bundle resolve <environment> <model_family> [--tenant T]
Settings (data dir etc.) come from the same config file and ARTIFACT_STORE_* variables as the server.`;

function fail(message: string): never {
  process.stderr.write(`${message}\n`);
  process.exit(2);
}

/** Says what was wrong, then how it is used: never the whole usage alone. */
function usage(problem: string): never {
  return fail(`artifact-store: ${problem}\n\n${USAGE}`);
}

/**
 * The new user's password: from stdin with --password-stdin (scripts) or when stdin is not a
 * terminal; on a terminal, prompted twice without echo.
 */
async function readNewPassword(fromStdin: boolean): Promise<string> {
  if (fromStdin || !process.stdin.isTTY) return readFileSync(0, 'utf8').replace(/\r?\n$/, '');
  // Raw mode (no echo) before the first prompt and until the last line: a password typed ahead
  // of a prompt must not be echoed either.
  process.stdin.setRawMode(true);
  try {
    const lines = hiddenLines();
    process.stderr.write('Password (at least 12 characters): ');
    const first = await lines.next();
    process.stderr.write('Repeat the password: ');
    const second = await lines.next();
    lines.close();
    if (first !== second) fail('the passwords do not match');
    return first;
  } finally {
    process.stdin.setRawMode(false);
  }
}

/** Lines typed on a raw-mode terminal, with backspace and Ctrl-C handled, never echoed. */
function hiddenLines(): { next(): Promise<string>; close(): void } {
  const stdin = process.stdin;
  const ready: string[] = [];
  let waiting: ((line: string) => void) | undefined;
  let typed = '';
  const onData = (chunk: Buffer): void => {
    for (const ch of chunk.toString('utf8')) {
      if (ch === '\r' || ch === '\n') {
        process.stderr.write('\n');
        if (waiting) {
          const w = waiting;
          waiting = undefined;
          w(typed);
        } else ready.push(typed);
        typed = '';
      } else if (ch === '\u0003') {
        stdin.setRawMode(false);
        process.stderr.write('\n');
        process.exit(130); // Ctrl-C
      } else if (ch === '\u007f' || ch === '\b') typed = typed.slice(0, -1);
      else typed += ch;
    }
  };
  stdin.on('data', onData);
  stdin.resume();
  return {
    next: () => (ready.length > 0 ? Promise.resolve(ready.shift()!) : new Promise((r) => (waiting = r))),
    close: () => {
      stdin.off('data', onData);
      stdin.pause();
    },
  };
}

/** Columns padded to their widest cell: readable, and `awk`/`cut` friendly. */
function table(header: string[], rows: string[][]): string {
  const all = [header, ...rows];
  const widths = header.map((_, i) => Math.max(...all.map((r) => r[i]!.length)));
  return all.map((r) => r.map((cell, i) => (i === r.length - 1 ? cell : cell.padEnd(widths[i]!))).join('  ')).join('\n') + '\n';
}

async function main(argv: string[]): Promise<void> {
  // metadata.db holds password and key hashes: whoever creates the data dir makes it 0700/0600.
  process.umask(0o077);
  let parsed;
  try {
    parsed = parseArgs({
      args: argv,
      allowPositionals: true,
      options: {
        admin: { type: 'boolean', default: false },
        'password-stdin': { type: 'boolean', default: false },
        owner: { type: 'string' },
        name: { type: 'string' },
        scope: { type: 'string' },
        repo: { type: 'string', multiple: true },
        'expires-in': { type: 'string' },
        'dry-run': { type: 'boolean', default: false },
        'public-key': { type: 'string' },
        into: { type: 'string' },
        reason: { type: 'string' },
        tenant: { type: 'string' },
        from: { type: 'string' },
        to: { type: 'string' },
        help: { type: 'boolean', short: 'h', default: false },
      },
    });
  } catch (err) {
    // parseArgs' TypeError (unknown option, missing value) is the user's mistake: no stack.
    return usage(err instanceof Error ? err.message : String(err));
  }
  const { values, positionals } = parsed;
  const [group, command, ...args] = positionals;
  if (values.help || !group) {
    process.stdout.write(`${USAGE}\n`);
    return;
  }
  let config;
  try {
    config = loadConfig();
  } catch (err) {
    return fail(`artifact-store: ${configProblem(err)}`);
  }
  if (group === 'db') {
    // Before opening metadataTarget: the source is a SQLite file, the target a URL, neither the configured default database.
    if (command !== 'migrate-to-postgres') usage(`unknown command "${[group, command].filter(Boolean).join(' ')}"`);
    const { runMigrateCommand } = await import('./ops/migrate-to-postgres.js');
    process.exitCode = runMigrateCommand({ from: values.from, to: values.to ?? config.databaseUrl }, (s) => process.stdout.write(s), (s) => process.stderr.write(s));
    return;
  }
  const db = openDatabase(metadataTarget(config));
  const identities = new IdentityStore(db);
  const actor = `cli:${process.env.USER ?? 'operator'}`;
  const user = (name: string | undefined) => {
    const row = name ? identities.principalByName(name) : undefined;
    if (!row || row.kind !== 'user') fail(`no such user: ${name ?? ''}`);
    return row;
  };
  try {
    if (group === 'backup') {
      const { backupRegistry } = await import('./ops/backup.js');
      const report = await backupRegistry(config, db, command ?? usage('backup: into which directory? (backup <dir>)'));
      process.stdout.write(`${JSON.stringify(report, null, 2)}\n`);
      const missing = report.blobs.missing ?? [];
      if (missing.length > 0) {
        // An incomplete backup must not look like a good one to a script.
        process.stderr.write(`artifact-store: backup incomplete: ${missing.length} blob(s) the database names are not in the bucket (listed under blobs.missing)\n`);
        process.exitCode = 1;
      }
      return;
    }
    switch (`${group} ${command ?? ''}`) {
      case 'user create': {
        const name = args[0] ?? usage('user create: which user? (user create <name>)');
        const password = await readNewPassword(values['password-stdin']);
        if (password.length < 12) fail('the password must have at least 12 characters');
        const row = await createUserAccount(identities, name, password, values.admin, actor, true);
        process.stdout.write(`created user ${row.name}${row.isAdmin ? ' (administrator)' : ''}\n`);
        break;
      }
      case 'user list': {
        const rows = identities.listUsers().map((u) => [u.name, u.admin ? 'admin' : '-', u.disabled ? 'disabled' : 'enabled', new Date(u.createdAt).toISOString()]);
        process.stdout.write(table(['USER', 'ADMIN', 'STATE', 'CREATED'], rows));
        break;
      }
      case 'user password': {
        const row = user(args[0] ?? usage('user password: which user? (user password <name>)'));
        const password = await readNewPassword(values['password-stdin']);
        if (password.length < 12) fail('the password must have at least 12 characters');
        const { hashPassword } = await import('./auth/secrets.js');
        identities.setPassword(row, await hashPassword(password), actor);
        process.stdout.write(`password of ${row.name} changed; tokens issued before it no longer work\n`);
        break;
      }
      case 'user delete': {
        const { deleteUser } = await import('./auth/account-deletion.js');
        const done = deleteUser(identities, user(args[0] ?? usage('user delete: which user? (user delete <name>)')), actor, null);
        process.stdout.write(`deleted user ${done.user}: ${done.keysRevoked} API key(s) revoked, removed from ${done.memberships} organisation(s)\n`);
        break;
      }
      case 'org list': {
        const rows = identities.listOrgs().map((o) => {
          const id = identities.principalByName(o.name)!.id;
          const owners = identities.members(id).filter((m) => m.role === 'owner').map((m) => m.user);
          return [o.name, owners.join(',') || '(none)', new Date(o.createdAt).toISOString()];
        });
        process.stdout.write(table(['ORGANISATION', 'OWNERS', 'CREATED'], rows));
        break;
      }
      case 'org delete': {
        const name = args[0] ?? usage('org delete: which organisation? (org delete <name>)');
        const org = identities.principalByName(name);
        if (!org || org.kind !== 'org') fail(`no such organisation: ${name}`);
        const { deleteOrg } = await import('./auth/account-deletion.js');
        const done = deleteOrg(identities, org, actor);
        process.stdout.write(`deleted organisation ${done.org} (${done.members} member(s) removed)\n`);
        break;
      }
      case 'org create': {
        const name = args[0] ?? usage('org create: which organisation? (org create <name> --owner <user>)');
        if (!values.owner) usage('org create: --owner <user> is required (the user who will own the organisation)');
        validatePrincipalName(identities, name, true);
        identities.createOrg(name, user(values.owner).id, actor);
        process.stdout.write(`created organisation ${name} owned by ${values.owner}\n`);
        break;
      }
      case 'org member': {
        const [orgName, userName, role] = args;
        const org = orgName ? identities.principalByName(orgName) : undefined;
        if (!org || org.kind !== 'org') fail(`no such organisation: ${orgName ?? ''}`);
        if (!role || !['owner', 'maintainer', 'reader', 'remove'].includes(role)) usage(`org member: the role must be owner, maintainer, reader or remove${role ? `, not "${role}"` : ''}`);
        identities.setMember(org, user(userName), role === 'remove' ? null : (role as Role), actor);
        process.stdout.write(`${userName} in ${orgName}: ${role}\n`);
        break;
      }
      case 'key create': {
        const owner = user(args[0]);
        const scopes = (values.scope ?? '').split(',').filter(Boolean);
        if (scopes.length === 0 || !scopes.every((s) => ['read', 'publish', 'admin'].includes(s))) fail('--scope must list read, publish and/or admin');
        const expires = values['expires-in'] ? Number(values['expires-in']) : undefined;
        if (expires !== undefined && (!Number.isSafeInteger(expires) || expires <= 0)) fail('--expires-in must be a positive number of seconds');
        const key = createApiKey(identities, owner.id, { name: values.name ?? 'cli', scopes: scopes as KeyScope[], repositories: values.repo, expiresInSeconds: expires }, actor);
        process.stdout.write(`${key.token}\n`);
        process.stderr.write(`key ${key.id} created; the token above is shown only once\n`);
        break;
      }
      case 'key revoke':
        if (!identities.revokeKey(args[0] ?? usage('key revoke: which key? (key revoke <id>)'), actor)) fail('no such active key');
        process.stdout.write(`revoked ${args[0]}\n`);
        break;
      case 'repo visibility': {
        const [repo, visibility] = args;
        if (!repo || !isValidName(repo)) usage(`repo visibility: ${repo ? `"${repo}" is not a repository name` : 'which repository?'}`);
        if (visibility !== 'public' && visibility !== 'private') usage('repo visibility: the visibility must be public or private');
        identities.setVisibility(repo, visibility, actor);
        process.stdout.write(`${repo} is ${visibility}\n`);
        break;
      }
      case 'events verify': {
        const result = verifyChain(db);
        if (!result.ok) fail(`event log broken at seq ${result.brokenAt}`);
        // Checkpoints are checked against the registry's own key file, never against keys stored beside them.
        const { existsSync } = await import('node:fs');
        const { loadOrCreateLogKey, logKeyFromPublicPem, logKeyPath, verifyCheckpoints } = await import('./events/checkpoints.js');
        const keyFile = logKeyPath(config);
        const publicKey = values['public-key'];
        const key = publicKey ? logKeyFromPublicPem(readFileSync(publicKey, 'utf8')) : existsSync(keyFile) ? loadOrCreateLogKey(keyFile) : null;
        const checked = key ? verifyCheckpoints(db, key) : { checked: 0, problems: [] };
        if (checked.problems.length > 0) fail(`checkpoints do not verify:\n  ${checked.problems.join('\n  ')}`);
        process.stdout.write(`event log intact: ${result.count} events, ${checked.checked} signed checkpoints verified\n`);
        break;
      }
      case 'events rebuild':
      case 'events check': {
        const { runEventsCommand } = await import('./events/rebuild.js');
        process.exitCode = runEventsCommand(command as 'rebuild' | 'check', metadataTarget(config), values.into, (s) => process.stdout.write(s));
        break;
      }
      case 'gc ': {
        const { runGcCommand } = await import('./operations/index.js');
        process.stdout.write(`${JSON.stringify(await runGcCommand(values['dry-run'], actor), null, 2)}\n`);
        break;
      }
      case 'bundle publish':
      case 'bundle transition':
      case 'bundle activate':
      case 'bundle rollback':
      case 'bundle resolve': {
        const { runBundleCommand } = await import('./bundles/cli.js');
        const out = await runBundleCommand(command!, args, { reason: values.reason, tenant: values.tenant }, actor);
        process.stdout.write(`${JSON.stringify(out, null, 2)}\n`);
        break;
      }
      default:
        usage(`unknown command "${[group, command].filter(Boolean).join(' ')}"`);
    }
  } catch (err) {
    fail(err instanceof Error ? err.message : String(err));
  } finally {
    db.$client.close();
  }
}

await main(process.argv.slice(2));
