// An OpenID Provider (panva/oidc-provider, OpenID Certified) for rolecall's tests: the real
// protocol endpoints; only the end user's login step is scripted.
//
// Two kinds of clients:
//  - workload identities (identity federation): client_id = the subject, secret OP_SECRET; the
//    client_credentials grant returns an RS256 JWT access token (RFC 9068, typ at+jwt) whose sub
//    is the client_id and whose aud is OP_AUDIENCE;
//  - relying parties (single sign-on): rolecall-pkce (public, code + PKCE), rolecall-secret
//    (code, client_secret_basic), rolecall-secret-post (code, client_secret_post) and
//    rolecall-implicit (response_type=id_token or "id_token token", response_mode=form_post).
//    They are "native"
//    clients, so any port on a loopback host matches their redirect URI (RFC 8252 §7.3) and the
//    relying party under test may listen anywhere on 127.0.0.1.
//
// env:
//   OP_PORT (required)
//   OP_SUBJECTS                  comma list of workload client ids
//   OP_AUDIENCE=wandb            aud of the workload access tokens
//   OP_SECRET=test-secret        every confidential client's secret
//   OP_REDIRECT_URIS             relying parties' redirect URIs
//                                (default http://127.0.0.1:8080/oidc/callback)
//   OP_POST_LOGOUT_REDIRECT_URIS relying parties' post-logout URIs (exact match; default
//                                http://127.0.0.1:8080/)
//   OP_AUTO_LOGIN=1              1: the login step signs the chosen user in at once;
//                                0: it shows a form (#username, #password, #submit)
//   OP_GROUPS_SCOPE=openid       the scope releasing the groups claim ("openid": always)
//   OP_CONFORM_ID_TOKEN=0        1: the code flow's ID token holds only sub (scope claims such
//                                as email come from userinfo, OpenID Connect Core's default)
//   OP_TOKEN_AUTH_METHODS        comma list of token endpoint auth methods offered
//                                (default: none, client_secret_basic, client_secret_post)
//   OP_ID_TOKEN_ALG=RS256        the relying parties' ID token alg (RS256, ES384 or EdDSA)
//   OP_CODE_AT_HASH              1: the token endpoint's ID token carries at_hash (as Okta's,
//                                Keycloak's and Google's do; oidc-provider puts it only in ID
//                                tokens from the authorization endpoint); other-token: its
//                                at_hash is the hash of another access token than the one sent
//   OP_AUTH_AGE=0                seconds before the login step the user is said to have
//                                authenticated (auth_time): a provider keeping an old session
//                                whatever max_age asks
//
// The user signing in: ?user= on the interaction URL, else the authorization request's
// login_hint (email, sub or username), else the first account. Consent is always granted.
// Prints "ready <issuer>" on stdout once listening.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';

import * as crypto from 'node:crypto';

import {
  SignJWT, decodeJwt, decodeProtectedHeader, exportJWK, generateKeyPair,
} from 'jose';
import Provider, { errors, interactionPolicy } from 'oidc-provider';

const here = path.dirname(fileURLToPath(import.meta.url));
const env = process.env;
const PORT = Number(env.OP_PORT);
const ISSUER = `http://127.0.0.1:${PORT}`;
const AUDIENCE = env.OP_AUDIENCE || 'wandb';
const SECRET = env.OP_SECRET || 'test-secret';
const list = (value, fallback) => (value || fallback).split(',').map((s) => s.trim()).filter(Boolean);
const SUBJECTS = list(env.OP_SUBJECTS, '');
const REDIRECT_URIS = list(env.OP_REDIRECT_URIS, 'http://127.0.0.1:8080/oidc/callback');
const POST_LOGOUT_URIS = list(env.OP_POST_LOGOUT_REDIRECT_URIS, 'http://127.0.0.1:8080/');
const AUTO_LOGIN = (env.OP_AUTO_LOGIN ?? '1') !== '0';
const GROUPS_SCOPE = env.OP_GROUPS_SCOPE || 'openid';
const AUTH_METHODS = list(env.OP_TOKEN_AUTH_METHODS, 'none,client_secret_basic,client_secret_post');
const ID_TOKEN_ALG = env.OP_ID_TOKEN_ALG || 'RS256';
const CODE_AT_HASH = env.OP_CODE_AT_HASH || '';
const AUTH_AGE = Number(env.OP_AUTH_AGE || 0);

// The provider's signing keys, one per ID token alg the tests use (kept here, so that the
// token endpoint's ID token can be re-signed with at_hash: OP_CODE_AT_HASH).
const signingKeys = {};
for (const [alg, options] of [['RS256', {}], ['ES384', {}], ['EdDSA', { crv: 'Ed25519' }]]) {
  const { privateKey } = await generateKeyPair(alg, { ...options, extractable: true });
  signingKeys[alg] = { key: privateKey, jwk: { ...await exportJWK(privateKey), alg, use: 'sig', kid: `test-${alg}` } };
}

// OpenID Connect Core §3.1.3.6: the left half of the hash of the token's octets, the hash
// being the alg's (SHA-512 for EdDSA with Ed25519).
const tokenHash = (value, alg) => {
  const name = alg === 'EdDSA' ? 'sha512' : `sha${alg.slice(-3)}`;
  const digest = crypto.createHash(name).update(value, 'ascii').digest();
  return digest.subarray(0, digest.length / 2).toString('base64url');
};

async function withAtHash(idToken, accessToken) {
  const header = decodeProtectedHeader(idToken);
  const hashed = CODE_AT_HASH === 'other-token' ? `${accessToken}-other` : accessToken;
  const payload = { ...decodeJwt(idToken), at_hash: tokenHash(hashed, header.alg) };
  return new SignJWT(payload).setProtectedHeader(header).sign(signingKeys[header.alg].key);
}

const accounts = JSON.parse(fs.readFileSync(path.join(here, 'accounts.json'), 'utf8'));
const findUser = (hint) => {
  if (!hint) return undefined;
  const h = String(hint).toLowerCase();
  return accounts.find((a) => [a.sub, a.email, a.preferred_username]
    .some((v) => (v || '').toLowerCase() === h));
};

// A login_hint naming another user than the OP session's forces a new login, so one cookie jar
// can sign different users in one after the other.
const policy = interactionPolicy.base();
policy.get('login').checks.add(new interactionPolicy.Check(
  'login_hint_mismatch',
  'login_hint names another End-User than the session',
  (ctx) => {
    const hinted = findUser(ctx.oidc.params.login_hint);
    const current = ctx.oidc.session.accountId;
    return hinted && current && current !== hinted.sub
      ? interactionPolicy.Check.REQUEST_PROMPT
      : interactionPolicy.Check.NO_NEED_TO_PROMPT;
  },
));

const rp = {
  application_type: 'native',
  redirect_uris: REDIRECT_URIS,
  post_logout_redirect_uris: POST_LOGOUT_URIS,
  id_token_signed_response_alg: ID_TOKEN_ALG,
};
const code = { grant_types: ['authorization_code'], response_types: ['code'] };
const clients = [
  { ...rp, ...code, client_id: 'rolecall-pkce', token_endpoint_auth_method: 'none' },
  {
    ...rp, ...code, client_id: 'rolecall-secret', client_secret: SECRET,
    token_endpoint_auth_method: 'client_secret_basic',
  },
  {
    ...rp, ...code, client_id: 'rolecall-secret-post', client_secret: SECRET,
    token_endpoint_auth_method: 'client_secret_post',
  },
  {
    ...rp, client_id: 'rolecall-implicit', token_endpoint_auth_method: 'none',
    grant_types: ['implicit'], response_types: ['id_token', 'id_token token'],
  },
  ...SUBJECTS.map((sub) => ({
    client_id: sub,
    client_secret: SECRET,
    token_endpoint_auth_method: 'client_secret_basic',
    grant_types: ['client_credentials'],
    response_types: [],
    redirect_uris: [],
  })),
].filter((c) => AUTH_METHODS.includes(c.token_endpoint_auth_method));

const claims = {
  openid: ['sub'],
  email: ['email', 'email_verified'],
  profile: ['name', 'given_name', 'family_name', 'preferred_username'],
};
if (GROUPS_SCOPE === 'openid') claims.openid.push('groups');
else claims[GROUPS_SCOPE] = ['groups'];

const provider = new Provider(ISSUER, {
  clients,
  claims,
  clientAuthMethods: AUTH_METHODS,
  scopes: ['openid', ...Object.keys(claims).filter((s) => s !== 'openid')],
  // By default the scope claims go into the ID token in the code flow too (as Okta and Entra
  // ID do).
  conformIdTokenClaims: env.OP_CONFORM_ID_TOKEN === '1',
  cookies: { keys: ['rolecall-test-only'] },
  pkce: { required: (ctx, client) => client.clientAuthMethod === 'none' },
  responseTypes: ['code', 'id_token', 'id_token token', 'none'],
  jwks: { keys: Object.values(signingKeys).map((k) => k.jwk) },
  enabledJWA: { idTokenSigningAlgValues: Object.keys(signingKeys) },
  features: {
    devInteractions: { enabled: false },
    clientCredentials: { enabled: true },
    rpInitiatedLogout: {
      enabled: true,
      // Sign the user out of the provider without asking: the confirmation form, answered
      // "yes", submits itself.
      logoutSource: async (ctx, form) => {
        const yes = form.replace('</form>', '<input type="hidden" name="logout" value="yes"/></form>');
        ctx.body = `<!doctype html><html><body>${yes}
<script>document.forms[0].submit()</script></body></html>`;
      },
    },
    resourceIndicators: {
      enabled: true,
      // Only workload clients get a resource (and so a JWT access token); relying parties get
      // opaque access tokens for the userinfo endpoint.
      defaultResource: async (ctx, client, oneOf) => {
        if (oneOf) return oneOf;
        return client.grantTypeAllowed('client_credentials') ? `urn:rolecall:${AUDIENCE}` : undefined;
      },
      useGrantedResource: async () => false,
      getResourceServerInfo: async (ctx, resource, client) => {
        if (!client.grantTypeAllowed('client_credentials')) throw new errors.InvalidTarget();
        return {
          scope: 'federation',
          audience: AUDIENCE,
          accessTokenFormat: 'jwt',
          accessTokenTTL: 300,
          jwt: { sign: { alg: 'RS256' } },
        };
      },
    },
  },
  findAccount: async (ctx, sub) => {
    const account = accounts.find((a) => a.sub === sub);
    if (!account) return undefined;
    const { password, ...released } = account; // eslint-disable-line no-unused-vars
    return { accountId: sub, claims: async () => released };
  },
  interactions: { policy, url: async (ctx, interaction) => `/interaction/${interaction.uid}` },
  ttl: {
    AccessToken: 600, AuthorizationCode: 60, ClientCredentials: 300, IdToken: 600,
    Interaction: 600, Session: 600, Grant: 600,
  },
  renderError: async (ctx, out) => {
    ctx.type = 'json';
    ctx.body = out;
  },
});
provider.proxy = false;

const esc = (s) => String(s).replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
const loginForm = (uid, hint, error) => `<!doctype html><html><head><title>Test IdP</title></head>
<body><h1>Sign in to the test IdP</h1>${error ? `<p id="error">${esc(error)}</p>` : ''}
<form method="post" action="/interaction/${esc(uid)}/login">
<label>Email <input id="username" name="username" value="${esc(hint || '')}"></label>
<label>Password <input id="password" name="password" type="password"></label>
<button id="submit" type="submit">Sign in</button></form></body></html>`;

async function readForm(req) {
  const chunks = [];
  for await (const chunk of req) chunks.push(chunk);
  return new URLSearchParams(Buffer.concat(chunks).toString('utf8'));
}

async function finishLogin(ctx, account) {
  const ts = Math.floor(Date.now() / 1000) - AUTH_AGE;
  const result = { login: { accountId: account.sub, amr: ['pwd'], ts } };
  return provider.interactionFinished(ctx.req, ctx.res, result, { mergeWithLastSubmission: false });
}

async function finishConsent(ctx, details) {
  const { prompt: { details: missing }, params, session: { accountId } } = details;
  const grant = details.grantId
    ? await provider.Grant.find(details.grantId)
    : new provider.Grant({ accountId, clientId: params.client_id });
  if (missing.missingOIDCScope) grant.addOIDCScope(missing.missingOIDCScope.join(' '));
  if (missing.missingOIDCClaims) grant.addOIDCClaims(missing.missingOIDCClaims);
  const grantId = await grant.save();
  const result = { consent: details.grantId ? {} : { grantId } };
  return provider.interactionFinished(ctx.req, ctx.res, result, { mergeWithLastSubmission: true });
}

provider.use(async (ctx, next) => {
  await next();
  const body = ctx.path === '/token' && CODE_AT_HASH ? ctx.body : undefined;
  if (body?.id_token && body.access_token) {
    body.id_token = await withAtHash(body.id_token, body.access_token);
  }
});

provider.use(async (ctx, next) => {
  const match = ctx.path.match(/^\/interaction\/([^/]+)(\/login)?$/);
  if (!match) return next();
  ctx.set('cache-control', 'no-store');
  try {
    const details = await provider.interactionDetails(ctx.req, ctx.res);
    ctx.set('x-test-prompt', details.prompt.name);
    if (details.prompt.name === 'consent') return await finishConsent(ctx, details);
    if (match[2] && ctx.method === 'POST') {
      const form = await readForm(ctx.req);
      const account = findUser(form.get('username'));
      if (!account || account.password !== form.get('password')) {
        ctx.type = 'html';
        ctx.body = loginForm(details.uid, form.get('username'), 'Wrong email or password');
        return undefined;
      }
      return await finishLogin(ctx, account);
    }
    const chosen = findUser(ctx.query.user) || findUser(details.params.login_hint);
    if (AUTO_LOGIN) return await finishLogin(ctx, chosen || accounts[0]);
    ctx.type = 'html';
    ctx.body = loginForm(details.uid, details.params.login_hint);
    return undefined;
  } catch (err) {
    ctx.status = err.status || 400;
    ctx.type = 'json';
    ctx.body = { error: err.error || err.name, error_description: err.error_description || err.message };
    return undefined;
  }
});

const server = provider.listen(PORT, '127.0.0.1', () => {
  console.log(`ready ${ISSUER}`);
});
const stop = () => server.close(() => process.exit(0));
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
