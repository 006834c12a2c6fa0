import { fixFor, type OperatorAction } from '../core/errors.js';
import type { SourceConfig } from './schema.js';
import { fixForSecretRef } from './secret-ref.js';

/**
 * What a person runs to fix a source, decided from the source's config (preset applied): the
 * one place that knows whether `latchkey login <source>` can work for it. `add`, `status`,
 * pre-flight, probes and the keeper's verdicts (and so `/readyz` and the dashboard) all ask
 * here, so none of them suggests a command that cannot run for that source.
 */

/** How `latchkey login` signs in: a browser (authorization code + PKCE) or the device flow. */
export type LoginFlow = 'browser' | 'device';

/**
 * The login flow that can run for `src`, or undefined when none can: the browser flow needs an
 * authorization endpoint, configured or discovered from the issuer (RFC 8414); the device flow
 * needs a device authorization endpoint (RFC 8628 §3.1).
 */
export function loginFlowOf(src: Pick<SourceConfig, 'oauth'> | undefined): LoginFlow | undefined {
  const o = src?.oauth;
  if (!o) return undefined;
  if (o.authorizationEndpoint || o.issuer) return 'browser';
  if (o.deviceAuthorizationEndpoint) return 'device';
  return undefined;
}

/** `latchkey login <name>` (with `--device` when that is the only flow), or undefined when login cannot run. */
export function loginCommandFor(name: string, src: Pick<SourceConfig, 'oauth'> | undefined): string | undefined {
  const flow = loginFlowOf(src);
  if (flow === undefined) return undefined;
  return flow === 'device' ? `latchkey login ${name} --device` : `latchkey login ${name}`;
}

/** The command that installs a grant obtained elsewhere (works for every OAuth source). */
export function importCommandFor(name: string): string {
  return `latchkey import ${name} --grant <file>`;
}

/** What `login` needs before it can run for `name`, with the commands that provide it. */
export function loginNeeds(name: string): string {
  return `login needs --authorization-endpoint or --issuer: latchkey add ${name} --authorization-endpoint <url>; or install a grant obtained elsewhere: ${importCommandFor(name)}`;
}

/**
 * The fix for `action` on source `name`. `src` is its config with the preset applied (undefined
 * when unknown: the generic fix); `configFile` names the file a config fix edits.
 */
export function fixForSource(name: string, src: SourceConfig | undefined, action: OperatorAction, configFile?: string): string {
  switch (action) {
    case 'relogin':
    case 'reauthorize': {
      if (!src?.oauth) return fixFor(name, action);
      return loginCommandFor(name, src) ?? `${importCommandFor(name)}   (or, to sign in here: latchkey add ${name} --authorization-endpoint <url>, then latchkey login ${name})`;
    }
    case 'replace_token':
      return src?.token ? fixForSecretRef(src.token.secret) : fixFor(name, action);
    case 'fix_config':
      return configFile ? `edit sources.${name} in ${configFile}, then: latchkey preflight ${name} --live` : fixFor(name, action);
    default:
      return fixFor(name, action);
  }
}

/**
 * An error's or a verdict's fix, made right for the source: a fix built without the config (the
 * generic `fixFor`, e.g. "latchkey login x" for a source that cannot log in) is replaced by the
 * config's; a specific one (a method's own) is kept.
 */
export function sourceAwareFix(name: string, src: SourceConfig | undefined, action: OperatorAction, fix: string | null | undefined, configFile?: string): string {
  if (fix === undefined || fix === null || fix === fixFor(name, action)) return fixForSource(name, src, action, configFile);
  return fix;
}
