// Test-only OpenID Connect / OAuth 2.1 identity provider for vigil's
// integration tests: a real oidc-provider issuing RFC 9068 JWT access tokens
// through the client_credentials grant with RFC 8707 resource indicators,
// plus a test-only key rotation endpoint. Never run this outside tests.
//
//   node tests/idp/provider.mjs --port 0 --config CONFIG.json
//
// Prints `READY http://127.0.0.1:PORT` (the issuer) once listening.
import { createServer } from 'node:http';
import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import Provider, { errors } from 'oidc-provider';

const { values: args } = parseArgs({
  options: { port: { type: 'string', default: '0' }, config: { type: 'string' } },
});
if (!args.config) {
  console.error('usage: node provider.mjs --port PORT --config CONFIG.json');
  process.exit(2);
}
const config = JSON.parse(readFileSync(args.config, 'utf8'));
const alg = config.alg ?? 'ES256';
if (!['ES256', 'RS256'].includes(alg)) throw new Error(`unsupported alg ${alg}`);
const resources = new Map((config.resources ?? []).map((r) => [r.resource, r]));
const words = (s) => (s ?? '').split(' ').filter(Boolean);
// Every scope any client or resource names is a static scope of the provider,
// so a client asking for one outside its own `scope` gets invalid_scope.
const scopes = [...new Set([
  ...(config.clients ?? []).flatMap((c) => words(c.scope)),
  ...[...resources.values()].flatMap((r) => words(r.scope)),
])];

function newKey() {
  const { privateKey } = alg === 'ES256'
    ? generateKeyPairSync('ec', { namedCurve: 'P-256' })
    : generateKeyPairSync('rsa', { modulusLength: 2048 });
  const kid = `${alg.toLowerCase()}-${randomBytes(8).toString('hex')}`;
  return { ...privateKey.export({ format: 'jwk' }), kid, alg, use: 'sig' };
}

let issuer;
let keys = [newKey()]; // keys[0] signs new tokens; all are published
let handle;

function build() {
  const signKid = keys[0].kid;
  const provider = new Provider(issuer, {
    jwks: { keys },
    scopes,
    clients: (config.clients ?? []).map((c) => ({
      client_id: c.client_id,
      client_secret: c.client_secret,
      scope: c.scope,
      grant_types: ['client_credentials'],
      response_types: [],
      redirect_uris: [],
    })),
    clientDefaults: { id_token_signed_response_alg: alg },
    cookies: { keys: [randomBytes(32).toString('hex')] },
    features: {
      devInteractions: { enabled: false },
      clientCredentials: { enabled: true },
      introspection: { enabled: false },
      revocation: { enabled: false },
      resourceIndicators: {
        enabled: true,
        defaultResource: () => undefined,
        useGrantedResource: () => false,
        getResourceServerInfo(ctx, resource) {
          const r = resources.get(resource);
          if (!r) throw new errors.InvalidTarget(`unknown resource ${resource}`);
          return {
            audience: r.resource,
            scope: r.scope,
            accessTokenTTL: r.ttl_seconds ?? 300,
            accessTokenFormat: 'jwt',
            jwt: { sign: { alg, kid: signKid } },
          };
        },
      },
    },
  });
  provider.on('server_error', (_ctx, err) => console.error('idp server_error:', err));
  return provider.callback();
}

function rotate(url, res) {
  const keepOld = ['1', 'true'].includes(url.searchParams.get('keep_old'));
  const fresh = newKey();
  keys = keepOld ? [fresh, ...keys] : [fresh];
  handle = build();
  res.writeHead(200, { 'content-type': 'application/json' });
  res.end(JSON.stringify({ kid: fresh.kid, kids: keys.map((k) => k.kid) }));
}

const server = createServer((req, res) => {
  const url = new URL(req.url, issuer);
  if (url.pathname === '/test/rotate-keys') {
    if (req.method !== 'POST') {
      res.writeHead(405, { allow: 'POST' }).end();
      return;
    }
    rotate(url, res);
    return;
  }
  handle(req, res);
});

server.listen(Number(args.port), '127.0.0.1', () => {
  issuer = `http://127.0.0.1:${server.address().port}`;
  handle = build();
  process.stdout.write(`READY ${issuer}\n`);
});

for (const sig of ['SIGTERM', 'SIGINT']) process.on(sig, () => process.exit(0));
