// `npm start`: build dist/ if it is missing or stale, then run the built server.
import { ensureBuilt } from './ensure-built.js';

ensureBuilt();
await import('../dist/server.js');
