// panva's openid-client (v6) against a live server, in its default configuration: discovery,
// client credentials, introspection, revocation, code + PKCE (S256), refresh, userinfo,
// end-session and private_key_jwt. Driven by tests/interop/test_openid_client.py.
//
// Usage: node openid_client.mjs '<config JSON>'
//   {"issuer": "...", "secret_client": {"client_id", "client_secret", "redirect_uri",
//    "post_logout_redirect_uri"}, "service": {"client_id", "client_secret"},
//    "jwt_client": {"client_id", "private_jwk"}}
// The authorization step needs a person: the script writes one line
// {"authorize": URL} to stdout and reads the URL the browser came back to from stdin.
// Its last line on stdout is the JSON result of every step.
import * as client from 'openid-client'
import { createInterface } from 'node:readline'

const config = JSON.parse(process.argv[2])
const issuer = new URL(config.issuer)
// The live server listens on plain HTTP on loopback; openid-client refuses HTTP otherwise.
const options = { execute: [client.allowInsecureRequests] }
const lines = createInterface({ input: process.stdin })[Symbol.asyncIterator]()
const result = {}

async function readLine () {
  const { value, done } = await lines.next()
  if (done) throw new Error('stdin closed before the callback URL came')
  return value.trim()
}

async function service () {
  // A secret passed as a string: openid-client's default is client_secret_post.
  const { client_id: id, client_secret: secret } = config.service
  const as = await client.discovery(issuer, id, secret, undefined, options)
  result.discovered_issuer = as.serverMetadata().issuer
  const tokens = await client.clientCredentialsGrant(as, { scope: config.service.scope })
  result.client_credentials = { access_token: tokens.access_token, token_type: tokens.token_type, scope: tokens.scope }
  result.introspection_before = await client.tokenIntrospection(as, tokens.access_token)
  await client.tokenRevocation(as, tokens.access_token)
  result.introspection_after = await client.tokenIntrospection(as, tokens.access_token)
}

async function webApp () {
  const c = config.secret_client
  const as = await client.discovery(issuer, c.client_id, c.client_secret, undefined, options)
  const verifier = client.randomPKCECodeVerifier()
  const state = client.randomState()
  const nonce = client.randomNonce()
  const url = client.buildAuthorizationUrl(as, {
    redirect_uri: c.redirect_uri,
    scope: 'openid profile email offline_access',
    code_challenge: await client.calculatePKCECodeChallenge(verifier),
    code_challenge_method: 'S256',
    state,
    nonce
  })
  process.stdout.write(JSON.stringify({ authorize: url.href }) + '\n')
  const callback = new URL(await readLine())
  const tokens = await client.authorizationCodeGrant(as, callback, {
    pkceCodeVerifier: verifier, expectedState: state, expectedNonce: nonce
  })
  const claims = tokens.claims()
  result.code = { id_token: tokens.id_token, refresh_token: Boolean(tokens.refresh_token), sub: claims.sub, aud: claims.aud }
  const userinfo = await client.fetchUserInfo(as, tokens.access_token, claims.sub)
  result.userinfo = userinfo
  const refreshed = await client.refreshTokenGrant(as, tokens.refresh_token)
  result.refresh = {
    access_token_changed: refreshed.access_token !== tokens.access_token,
    sub: refreshed.claims()?.sub ?? null
  }
  result.end_session_url = client.buildEndSessionUrl(as, {
    id_token_hint: tokens.id_token, post_logout_redirect_uri: c.post_logout_redirect_uri
  }).href
}

async function privateKeyJwt () {
  const c = config.jwt_client
  const { kid, ...jwk } = c.private_jwk
  const key = await crypto.subtle.importKey(
    'jwk', jwk, { name: 'RSASSA-PKCS1-v1_5', hash: 'SHA-256' }, false, ['sign'])
  const as = await client.discovery(issuer, c.client_id, undefined, client.PrivateKeyJwt({ key, kid }), options)
  const tokens = await client.clientCredentialsGrant(as, { scope: c.scope })
  result.private_key_jwt = { access_token: tokens.access_token }
}

try {
  await service()
  await privateKeyJwt()
  await webApp()
  process.stdout.write(JSON.stringify({ result }) + '\n')
  process.exit(0)
} catch (error) {
  process.stdout.write(JSON.stringify({ error: String(error), cause: String(error.cause ?? ''), code: error.code ?? null, result }) + '\n')
  process.exit(1)
}
