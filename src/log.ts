/** Structured JSON logs (pino). Authorization material is never logged: we log no headers at all. */
import { pino, type Logger } from 'pino';

export function createLogger(level: string): Logger {
  // Write through process.stdout, not pino's synchronous fd writer: when whatever reads our
  // stdout goes away (EPIPE), that writer retries forever and the process hangs; here the
  // error is dropped and the registry keeps serving.
  if (process.stdout.listenerCount('error') === 0) process.stdout.on('error', () => undefined);
  return pino(
    {
      level,
      base: { service: 'artifact-store' },
      timestamp: pino.stdTimeFunctions.isoTime,
      redact: { paths: ['*.authorization', '*.password', '*.secret*', '*.token'], censor: '[redacted]' },
    },
    process.stdout,
  );
}
