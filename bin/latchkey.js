#!/usr/bin/env node
// The `latchkey` command (package.json bin): builds dist/ if needed, then runs the CLI.
import { ensureBuilt } from '../scripts/ensure-built.js';

ensureBuilt({ quiet: true });
await import('../dist/cli.js');
