// A real OpenID Provider (panva's oidc-provider, OpenID Certified) on loopback for the portal's
// SSO tests: `node provider.mjs PORT`. It prints "ready <issuer>" once it listens.
//
// The portal's client is `iam-onboard` / `test-client-secret`; any
// http://127.0.0.1:<port>/admin/oidc/callback is accepted as its redirect URI, since each test
// serves its portal on a port of its own. Sign-in goes through oidc-provider's own login page
// (devInteractions: any password; the login is the account id below).
//
// Test-only routes, for answers the provider would never give on its own:
//   POST /test/next-id-token {"claims": {...}, "kid": "k1"|"k2"|"rogue"}: the next token
//     response carries its ID token with these claims changed (null removes one), signed
//     with that key ("rogue" signs with a key nobody publishes, under the kid "k1").
//   POST /test/publish-key {"kid": "k2"}: the JWKS serves k2 from now on (a key rotation).
import { createSign, generateKeyPairSync } from 'node:crypto';

import Provider from 'oidc-provider';

const port = Number(process.argv[2] || process.env.PORT || 0);
const issuer = `http://127.0.0.1:${port}`;

function newKey(kid) {
  const { privateKey, publicKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  const pub = { ...publicKey.export({ format: 'jwk' }), kid, alg: 'RS256', use: 'sig' };
  const priv = { ...privateKey.export({ format: 'jwk' }), kid, alg: 'RS256', use: 'sig' };
  return { privateKey, pub, priv };
}

const keys = { k1: newKey('k1'), k2: newKey('k2'), rogue: newKey('k1') };
const published = [];
let nextIdToken = null;

const ACCOUNTS = {
  alice: { email: 'alice@example.com', email_verified: true, groups: ['iam-admins', 'staff'] },
  bob: { email: 'bob@example.com', email_verified: true, groups: ['staff'] },
  carol: { email: 'carol@elsewhere.test', email_verified: true, groups: ['iam-admins'] },
  dave: { email: 'dave@example.com', email_verified: false, groups: ['iam-admins'] },
  erin: { email: 'erin@example.com', email_verified: true, groups: ['iam-admins'] },
};

const b64url = (value) => Buffer.from(value).toString('base64url');

function sign(claims, kid) {
  const key = keys[kid] || keys.k1;
  const header = { alg: 'RS256', typ: 'JWT', kid: key.pub.kid };
  const input = `${b64url(JSON.stringify(header))}.${b64url(JSON.stringify(claims))}`;
  const signature = createSign('RSA-SHA256').update(input).sign(key.privateKey);
  return `${input}.${signature.toString('base64url')}`;
}

const provider = new Provider(issuer, {
  clients: [{
    client_id: 'iam-onboard',
    client_secret: 'test-client-secret',
    redirect_uris: ['http://127.0.0.1/admin/oidc/callback'],
    grant_types: ['authorization_code'],
    response_types: ['code'],
    token_endpoint_auth_method: 'client_secret_basic',
  }],
  jwks: { keys: [keys.k1.priv] },
  cookies: { keys: ['test-only-cookie-key-not-a-secret'] },
  claims: {
    openid: ['sub'],
    email: ['email', 'email_verified'],
    profile: ['name', 'groups'],
  },
  // The ID token itself carries email and groups (the portal reads no userinfo).
  conformIdTokenClaims: false,
  features: { devInteractions: { enabled: true } },
  pkce: { required: () => true },
  async findAccount(ctx, id) {
    const account = ACCOUNTS[id];
    if (!account) return undefined;
    return {
      accountId: id,
      async claims() {
        return { sub: id, name: id, ...account };
      },
    };
  },
  // The portal is a first-party client: no consent page, the grant is made on the spot.
  async loadExistingGrant(ctx) {
    const grantId = ctx.oidc.result?.consent?.grantId
      || ctx.oidc.session.grantIdFor(ctx.oidc.client.clientId);
    if (grantId) return ctx.oidc.provider.Grant.find(grantId);
    const grant = new ctx.oidc.provider.Grant({
      clientId: ctx.oidc.client.clientId,
      accountId: ctx.oidc.session.accountId,
    });
    grant.addOIDCScope('openid email profile');
    await grant.save();
    return grant;
  },
  ttl: { IdToken: 3600, AccessToken: 600, AuthorizationCode: 60, Interaction: 600, Session: 3600, Grant: 3600 },
});

// Each test's portal listens on its own port: accept the callback path on any loopback port.
const allowed = /^http:\/\/127\.0\.0\.1:\d+\/admin\/oidc\/callback$/;
provider.Client.prototype.redirectUriAllowed = function redirectUriAllowed(value) {
  return allowed.test(value);
};

async function readJson(req) {
  const chunks = [];
  for await (const chunk of req) chunks.push(chunk);
  const text = Buffer.concat(chunks).toString('utf8');
  return text ? JSON.parse(text) : {};
}

provider.use(async (ctx, next) => {
  if (ctx.path.startsWith('/test/')) {
    if (ctx.method !== 'POST') ctx.throw(405);
    const body = await readJson(ctx.req);
    if (ctx.path === '/test/next-id-token') {
      nextIdToken = { claims: body.claims || {}, kid: body.kid || 'k1' };
    } else if (ctx.path === '/test/publish-key') {
      const key = keys[body.kid];
      if (!key || body.kid === 'rogue') ctx.throw(400);
      if (!published.includes(key.pub)) published.push(key.pub);
    } else {
      ctx.throw(404);
    }
    ctx.body = { ok: true };
    return;
  }
  await next();
  if (ctx.path === '/token' && nextIdToken && ctx.body && ctx.body.id_token) {
    const [, payload] = ctx.body.id_token.split('.');
    const claims = JSON.parse(Buffer.from(payload, 'base64url').toString('utf8'));
    for (const [name, value] of Object.entries(nextIdToken.claims)) {
      if (value === null) delete claims[name];
      else claims[name] = value;
    }
    ctx.body = { ...ctx.body, id_token: sign(claims, nextIdToken.kid) };
    nextIdToken = null;
  }
  if (ctx.path === '/jwks' && ctx.body && published.length) {
    ctx.body = { keys: [...ctx.body.keys, ...published] };
  }
});

const server = provider.listen(port, '127.0.0.1', () => {
  process.stdout.write(`ready ${issuer}\n`);
});

function stop() {
  server.close(() => process.exit(0));
  setTimeout(() => process.exit(0), 2000).unref();
}
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
