import type { PgStore } from '../../src/store/pg/pg-store.js';
import { freshPgSchema, openPgStore } from '../fixtures/pg.js';
import type { ContractBackend } from './contract.js';

/** The PostgreSQL store under the contract suite: a spec is a store URL naming a fresh, migrated schema. */
export function openContractStore(spec: string, options: Parameters<ContractBackend['open']>[1] = {}): PgStore {
  return openPgStore(spec, options);
}

export const pgBackend: ContractBackend = {
  async fresh() {
    const { url, cleanup } = await freshPgSchema();
    return { spec: url, cleanup };
  },
  open: openContractStore,
  childModule: new URL('./pg-backend.js', import.meta.url).href,
};
