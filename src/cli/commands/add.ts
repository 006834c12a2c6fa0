import { parseArgs } from 'node:util';
import { SECRET_REF, SOURCE_NAME } from '../../config/constants.js';
import type { SourceConfig } from '../../config/schema.js';
import { updateConfigFile } from '../../config/write.js';
import { homePaths, latchkeyHome } from '../../paths.js';
import { usageError, type Command } from '../io.js';

const options = {
  'token-endpoint': { type: 'string' },
  issuer: { type: 'string' },
  'client-id': { type: 'string' },
  'client-secret': { type: 'string' },
  'client-auth': { type: 'string' },
  scope: { type: 'string' },
  token: { type: 'string' },
  header: { type: 'string' },
  scheme: { type: 'string' },
  preset: { type: 'string' },
  probe: { type: 'string' },
  'probe-status': { type: 'string' },
  force: { type: 'boolean' },
} as const;

export const command: Command = {
  summary: 'declare a source (OAuth client, static token or preset)',
  usage: `latchkey add <source> --token-endpoint <url> --client-id <id> [--client-secret <ref>] [--client-auth none|client_secret_basic|client_secret_post] [--scope <s>]
       latchkey add <source> --issuer <url> --client-id <id> [...]          (endpoints by discovery)
       latchkey add <source> --token <ref> [--header <name>] [--scheme <s>]  (PAT / API key)
       latchkey add <source> --preset <name> [...]
  common: [--probe <url>] [--probe-status <code>] [--force]
  <ref> is a secret reference: env:NAME, file:/path or keyring:service/account (never the secret itself)`,
  async run(args, io) {
    const { values, positionals } = parseArgs({ args, options, allowPositionals: true, strict: true });
    const [source, ...extra] = positionals;
    if (!source || extra.length) throw usageError(`expected exactly one source name\nusage: ${this.usage}`);
    if (!SOURCE_NAME.test(source)) throw usageError(`invalid source name "${source}": letters, digits, ".", "_" and "-"`);
    for (const key of ['client-secret', 'token'] as const) {
      const ref = values[key];
      if (ref !== undefined && !SECRET_REF.test(ref)) {
        throw usageError(`--${key} takes a secret reference (env:NAME, file:/path or keyring:service/account), not the secret itself; the value was not stored`);
      }
    }
    const src: SourceConfig = {};
    if (values.preset) src.preset = values.preset;
    if (values['token-endpoint'] || values.issuer || values['client-id']) {
      if (!values['client-id']) throw usageError('--client-id is required with --token-endpoint or --issuer');
      if (!values['token-endpoint'] && !values.issuer && !values.preset) throw usageError('--token-endpoint or --issuer is required with --client-id');
      const oauth: NonNullable<SourceConfig['oauth']> = { clientId: values['client-id'] };
      if (values.issuer) {
        const { discoverIssuer } = await import('../../oauth/discovery.js');
        const d = await discoverIssuer(values.issuer, (i, init) => fetch(i, init));
        oauth.issuer = d.issuer;
        oauth.tokenEndpoint = d.tokenEndpoint;
        if (d.authorizationEndpoint) oauth.authorizationEndpoint = d.authorizationEndpoint;
        if (d.deviceAuthorizationEndpoint) oauth.deviceAuthorizationEndpoint = d.deviceAuthorizationEndpoint;
        if (d.revocationEndpoint) oauth.revocationEndpoint = d.revocationEndpoint;
      }
      if (values['token-endpoint']) oauth.tokenEndpoint = values['token-endpoint'];
      if (values['client-secret']) oauth.clientSecret = values['client-secret'];
      if (values['client-auth']) oauth.clientAuth = values['client-auth'] as NonNullable<typeof oauth.clientAuth>;
      if (values.scope) oauth.scope = values.scope;
      src.oauth = oauth;
    }
    if (values.token) {
      src.token = { secret: values.token };
      if (values.header) src.token.header = values.header;
      if (values.scheme !== undefined) src.token.scheme = values.scheme;
    }
    if (values.probe) {
      src.probe = { url: values.probe };
      if (values['probe-status']) {
        const n = Number(values['probe-status']);
        if (!Number.isInteger(n) || n < 100 || n > 599) throw usageError('--probe-status must be an HTTP status code');
        src.probe.expectStatus = n;
      }
    }
    if (!src.preset && !src.oauth && !src.token) throw usageError(`nothing to add: give --token-endpoint/--issuer with --client-id, --token <ref>, or --preset\nusage: ${this.usage}`);
    const paths = homePaths(latchkeyHome(io.env));
    let existed = false;
    await updateConfigFile(paths.config, (raw) => {
      raw.sources ??= {};
      existed = Object.prototype.hasOwnProperty.call(raw.sources, source);
      if (existed && !values.force) throw usageError(`source "${source}" already exists in ${paths.config}; use --force to replace it`);
      raw.sources[source] = src;
    });
    io.stdout.write(`${existed ? 'replaced' : 'added'} source "${source}" in ${paths.config}\n`);
    if (src.oauth || src.preset) io.stdout.write(`next: latchkey login ${source}   (or: latchkey import ${source} --grant <file>)\n`);
    return 0;
  },
};
