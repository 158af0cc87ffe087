// Runs once before the test files (tap's `before`): build dist/ (and packages/*/dist) so that tests
// that start the built server or the `latchkey` command, or load a built package, never race to build it.
import { ensureBuilt, ensurePackagesBuilt } from './ensure-built.js';

ensureBuilt();
ensurePackagesBuilt();
