// The peer for bench/run.py: panva's oidc-provider (OpenID Certified), in memory (its default
// adapter keeps every grant and token in the process and nothing on disk), one process, with
// client credentials, introspection, JWKS and discovery, and one confidential client.
// Configuration comes as one JSON argument: {"port": N, "client_id": ..., "client_secret": ...}.
// It prints one line {"issuer": "http://127.0.0.1:PORT"} once it listens; it exits when its
// standard input closes.
import http from 'node:http';
import { generateKeyPairSync } from 'node:crypto';
import Provider from 'oidc-provider';

const config = JSON.parse(process.argv[2]);
const issuer = `http://127.0.0.1:${config.port}`;
// One RS256 signing key, like the app's default; made at start, kept in memory.
const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
const jwk = { ...privateKey.export({ format: 'jwk' }), kid: 'bench-peer', use: 'sig', alg: 'RS256' };

const provider = new Provider(issuer, {
  clients: [{
    client_id: config.client_id,
    client_secret: config.client_secret,
    redirect_uris: ['https://bench.example.com/callback'],
    response_types: [],
    grant_types: ['client_credentials'],
    token_endpoint_auth_method: 'client_secret_basic',
    scope: 'profile',
  }],
  scopes: ['openid', 'profile'],
  jwks: { keys: [jwk] },
  features: {
    clientCredentials: { enabled: true },
    introspection: { enabled: true },
    devInteractions: { enabled: false },
  },
  cookies: { keys: ['bench-peer-cookie-key'] },
});
// Quiet: a wrk run makes hundreds of thousands of requests.
provider.on('server_error', (ctx, error) => process.stderr.write(`server_error ${error}\n`));
const server = http.createServer(provider.callback());
server.listen(config.port, '127.0.0.1', () => {
  process.stdout.write(JSON.stringify({ issuer }) + '\n');
});
process.stdin.on('end', () => process.exit(0));
process.stdin.resume();
