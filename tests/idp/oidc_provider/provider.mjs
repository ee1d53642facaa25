// An OpenID Provider (panva/oidc-provider) for rolecall's identity-federation tests.
//
// Each client is a workload identity: client_id = the subject, secret OP_SECRET. The
// client_credentials grant with the default resource returns an RS256 JWT access token
// (RFC 9068, typ at+jwt) whose sub is the client_id and whose aud is OP_AUDIENCE: the kind of
// token a job exchanges at rolecall's /oidc/token.
//
// env: OP_PORT (required), OP_SUBJECTS (comma list of client ids), OP_AUDIENCE, OP_SECRET.
// Prints "ready <issuer>" on stdout once listening.
import Provider from 'oidc-provider';

const env = process.env;
const PORT = Number(env.OP_PORT);
const ISSUER = `http://127.0.0.1:${PORT}`;
const AUDIENCE = env.OP_AUDIENCE || 'wandb';
const SECRET = env.OP_SECRET || 'test-secret';
const SUBJECTS = (env.OP_SUBJECTS || '').split(',').map((s) => s.trim()).filter(Boolean);

const provider = new Provider(ISSUER, {
  clients: SUBJECTS.map((sub) => ({
    client_id: sub,
    client_secret: SECRET,
    token_endpoint_auth_method: 'client_secret_basic',
    grant_types: ['client_credentials'],
    response_types: [],
    redirect_uris: [],
  })),
  cookies: { keys: ['rolecall-test-only'] },
  features: {
    devInteractions: { enabled: false },
    clientCredentials: { enabled: true },
    resourceIndicators: {
      enabled: true,
      defaultResource: async () => `urn:rolecall:${AUDIENCE}`,
      useGrantedResource: async () => false,
      getResourceServerInfo: async () => ({
        scope: 'federation',
        audience: AUDIENCE,
        accessTokenFormat: 'jwt',
        accessTokenTTL: 300,
        jwt: { sign: { alg: 'RS256' } },
      }),
    },
  },
  ttl: { ClientCredentials: 300, AccessToken: 300, Session: 600, Grant: 600, Interaction: 600 },
});
provider.proxy = false;

const server = provider.listen(PORT, '127.0.0.1', () => {
  console.log(`ready ${ISSUER}`);
});
const stop = () => server.close(() => process.exit(0));
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
