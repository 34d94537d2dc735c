/** Structured JSON logs (pino). Authorization material is never logged: we log no headers at all. */
import { pino, type Logger } from 'pino';

/**
 * The lines logged during one event-loop turn, written to stdout together: one write(2) per turn
 * instead of one per line (the access log writes a line per request). Whole lines, in order;
 * flushed at 64 KiB, on the next turn, and at exit (stdout writes to files and pipes are
 * synchronous on Linux, so the last lines are not lost on a clean exit or an uncaught error).
 */
class TurnBatch {
  private lines: string[] = [];
  private bytes = 0;
  private scheduled = false;

  constructor(private readonly out: NodeJS.WritableStream) {
    process.once('exit', () => this.flush());
  }

  write(line: string): boolean {
    this.lines.push(line);
    this.bytes += line.length;
    if (this.bytes >= 64 * 1024) this.flush();
    else if (!this.scheduled) {
      this.scheduled = true;
      setImmediate(() => this.flush());
    }
    return true;
  }

  flush(): void {
    this.scheduled = false;
    if (this.lines.length === 0) return;
    const chunk = this.lines.join('');
    this.lines = [];
    this.bytes = 0;
    this.out.write(chunk);
  }
}

/** pino's isoTime, formatted once per millisecond (the access log writes many lines per ms). */
let isoAt = -1;
let isoText = '';
function isoTime(): string {
  const now = Date.now();
  if (now !== isoAt) {
    isoAt = now;
    isoText = `,"time":"${new Date(now).toISOString()}"`;
  }
  return isoText;
}

/**
 * `batch`: the server's logger (main.ts) batches its writes per event-loop turn. Commands that
 * also print to stdout themselves keep writing each line at once, so the two stay in order.
 */
export function createLogger(level: string, options: { batch?: boolean } = {}): Logger {
  // Write through process.stdout, not pino's synchronous fd writer: when whatever reads our
  // stdout goes away (EPIPE), that writer retries forever and the process hangs; here the
  // error is dropped and the registry keeps serving.
  if (process.stdout.listenerCount('error') === 0) process.stdout.on('error', () => undefined);
  return pino(
    {
      level,
      base: { service: 'artifact-store' },
      timestamp: isoTime,
      redact: { paths: ['*.authorization', '*.password', '*.secret*', '*.token'], censor: '[redacted]' },
    },
    options.batch ? new TurnBatch(process.stdout) : process.stdout,
  );
}
