/** The conformance suite against the embedded default (local disk + SQLite), as a process. */
import { conformanceAgainst } from '../helpers/conformance.js';

conformanceAgainst('filesystem driver', () => ({}));
