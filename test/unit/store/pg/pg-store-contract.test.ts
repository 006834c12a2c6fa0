import { test } from 'node:test';
import { runStoreContract } from '../../../store/contract.js';
import { pgBackend } from '../../../store/pg-backend.js';
import { pgSkipReason } from '../../../fixtures/pg.js';

// The store contract v2 suite, unchanged, on the real PostgreSQL server (LATCHKEY_TEST_PG_URL).
const skip = pgSkipReason();
if (skip) test('PostgreSQL store contract', { skip }, () => undefined);
else runStoreContract('PostgreSQL store', pgBackend);
