/** Structured JSON logs (pino). Authorization material is never logged: we log no headers at all. */
import { pino, type Logger } from 'pino';

export function createLogger(level: string): Logger {
  return pino({
    level,
    base: { service: 'artifact-store' },
    timestamp: pino.stdTimeFunctions.isoTime,
    redact: { paths: ['*.authorization', '*.password', '*.secret*', '*.token'], censor: '[redacted]' },
  });
}
