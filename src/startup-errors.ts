/** How the server and the CLI report a configuration they cannot use: one message, no stack. */
export function configProblem(err: unknown): string {
  const e = err as NodeJS.ErrnoException | undefined;
  if (e?.code === 'ENOENT' && e.path) return `config file ${e.path} not found (ARTIFACT_STORE_CONFIG names it)`;
  if (e?.code === 'EACCES' && e.path) return `config file ${e.path} is not readable by this user`;
  return e instanceof Error ? e.message : String(err);
}
