/** Names and patterns shared by the schema and the CLI (kept apart so the CLI need not load the validator). */
export const SOURCE_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;
export const SECRET_REF = /^(env:[A-Za-z_][A-Za-z0-9_]*|file:\/.+|keyring:[^/\s]+\/[^\s]+)$/;

export const methodNames = ['token', 'oauth', 'session'] as const;
export type MethodName = (typeof methodNames)[number];

export const clientAuthMethods = ['none', 'client_secret_basic', 'client_secret_post'] as const;
