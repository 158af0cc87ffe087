// Runs once before the test files (tap's `before`): build dist/ so that tests that start the
// built server or the `latchkey` command never race to build it.
import { ensureBuilt } from './ensure-built.js';

ensureBuilt();
