import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { FileStore } from '../../src/store/file-store.js';
import type { ContractBackend } from './contract.js';

/** The file store under the contract suite: a spec is a fresh private directory (a LATCHKEY_HOME). */
export function openContractStore(spec: string, options: Parameters<ContractBackend['open']>[1] = {}): FileStore {
  return new FileStore({ path: join(spec, 'store.json'), ...options });
}

export const fileBackend: ContractBackend = {
  async fresh() {
    const base = await mkdtemp(join(tmpdir(), 'lk-contract-'));
    const home = join(base, 'home');
    return { spec: home, cleanup: () => rm(base, { recursive: true, force: true }) };
  },
  open: openContractStore,
  childModule: new URL('./file-backend.js', import.meta.url).href,
};
