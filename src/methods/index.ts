import type { MethodName } from '../config/constants.js';
import { ExitCode, LatchkeyError, type ErrorCode, type OperatorAction } from '../core/errors.js';
import type { AuthMethod, MethodContext, MethodFactory } from './method.js';
import { createOAuthMethod } from './oauth.js';
import { createTokenMethod } from './token.js';

export type { AuthMethod, Availability, AuthRequest, CredentialExpiry, MethodContext, MethodFactory, PreparedAuth } from './method.js';

/** Loads a method's factory (lazily: a source that never uses a method never loads its module). */
export type MethodLoader = () => Promise<MethodFactory>;

/**
 * Every auth method, by the name used in `sources.<name>.methods`. One line per method; a
 * method whose module is not installed is `undefined` and reported unavailable.
 */
export const methodRegistry: Record<MethodName, MethodLoader | undefined> = {
  token: async () => createTokenMethod,
  oauth: async () => createOAuthMethod,
  session: async () => (await import('./session.js')).createSessionMethod,
};

/** What an uninstalled method says when asked. */
export const NOT_INSTALLED_ACTION: Record<MethodName, OperatorAction> = {
  token: 'replace_token',
  oauth: 'relogin',
  session: 'renew_session',
};

const UNAVAILABLE_CODE: Record<MethodName, ErrorCode> = {
  token: 'LK_SECRET_UNRESOLVED',
  oauth: 'LK_NO_GRANT',
  session: 'LK_SESSION',
};

/** A stand-in for a method whose module is not installed: always unavailable, never used. */
export function unavailableMethod(name: MethodName, reason: string, operatorAction: OperatorAction = NOT_INSTALLED_ACTION[name]): AuthMethod {
  const refuse = (): never => {
    throw new LatchkeyError(UNAVAILABLE_CODE[name], `${name}: ${reason}`, { operatorAction, exitCode: ExitCode.actionRequired });
  };
  return {
    name,
    rejectedAction: operatorAction,
    available: async () => ({ ok: false, reason, operatorAction }),
    authorize: async () => refuse(),
    recover: async () => false,
  };
}

/** Builds a source's methods in its order of preference (`sources.<name>.methods`). */
export async function buildMethods(ctx: MethodContext): Promise<AuthMethod[]> {
  const out: AuthMethod[] = [];
  for (const name of ctx.source.methods) {
    const load = methodRegistry[name];
    out.push(load ? (await load())(ctx) : unavailableMethod(name, `${name} method not installed`));
  }
  return out;
}
