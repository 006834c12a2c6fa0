import { runStoreContract } from '../../store/contract.js';
import { fileBackend } from '../../store/file-backend.js';

runStoreContract('file store', fileBackend);
