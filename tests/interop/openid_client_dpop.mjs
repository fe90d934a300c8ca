// panva's openid-client (v6) with DPoP (RFC 9449) and token exchange (RFC 8693) against a live
// server: code + PKCE with dpop_jkt and a DPoP key, userinfo and /api/me with DPoP proofs,
// refresh, then the app exchanges the person's token for one to an API, with its own token
// as the actor (delegation). openid-client answers the server's use_dpop_nonce challenges
// itself. Driven by tests/interop/test_openid_client.py.
//
// Usage: node openid_client_dpop.mjs '<config JSON>'
//   {"issuer", "app": {"client_id", "client_secret", "redirect_uri", "audience"}}
// Like openid_client.mjs: one {"authorize": URL} line out, the callback URL in, the result last.
import * as client from 'openid-client'
import { createInterface } from 'node:readline'

const config = JSON.parse(process.argv[2])
const issuer = new URL(config.issuer)
const options = { execute: [client.allowInsecureRequests] }
const lines = createInterface({ input: process.stdin })[Symbol.asyncIterator]()
const result = {}
const TOKEN_EXCHANGE = 'urn:ietf:params:oauth:grant-type:token-exchange'
const ACCESS_TOKEN = 'urn:ietf:params:oauth:token-type:access_token'

async function readLine () {
  const { value, done } = await lines.next()
  if (done) throw new Error('stdin closed before the callback URL came')
  return value.trim()
}

async function webApp (as) {
  const c = config.app
  result.dpop_algs = as.serverMetadata().dpop_signing_alg_values_supported
  const keyPair = await client.randomDPoPKeyPair('ES256')
  const DPoP = client.getDPoPHandle(as, keyPair)
  const verifier = client.randomPKCECodeVerifier()
  const state = client.randomState()
  const nonce = client.randomNonce()
  const jkt = await DPoP.calculateThumbprint()
  result.jkt = jkt
  const url = client.buildAuthorizationUrl(as, {
    redirect_uri: c.redirect_uri,
    scope: 'openid profile offline_access',
    code_challenge: await client.calculatePKCECodeChallenge(verifier),
    code_challenge_method: 'S256',
    dpop_jkt: jkt,
    prompt: 'consent',
    state,
    nonce
  })
  process.stdout.write(JSON.stringify({ authorize: url.href }) + '\n')
  const callback = new URL(await readLine())
  const tokens = await client.authorizationCodeGrant(as, callback, {
    pkceCodeVerifier: verifier, expectedState: state, expectedNonce: nonce
  }, undefined, { DPoP })
  const claims = tokens.claims()
  result.code = { token_type: tokens.token_type, sub: claims.sub, refresh_token: Boolean(tokens.refresh_token) }
  result.userinfo = await client.fetchUserInfo(as, tokens.access_token, claims.sub, { DPoP })
  const me = await client.fetchProtectedResource(
    as, tokens.access_token, new URL('api/me', issuer), 'GET', undefined, undefined, { DPoP })
  result.me = { status: me.status, body: await me.json() }
  const refreshed = await client.refreshTokenGrant(as, tokens.refresh_token, undefined, { DPoP })
  result.refresh = { token_type: refreshed.token_type, access_token_changed: refreshed.access_token !== tokens.access_token }
  // The refresh revoked the first access token: the new one is the person's token now.
  result.access_token = refreshed.access_token
  return refreshed.access_token
}

async function exchange (as, subjectToken) {
  result.grant_types = as.serverMetadata().grant_types_supported
  // A new key for the exchange; the app registered dpop_bound_access_tokens, so its own token
  // (the actor: the exchanged token says who acts for the person) needs a proof too.
  const keyPair = await client.randomDPoPKeyPair('ES256')
  const DPoP = client.getDPoPHandle(as, keyPair)
  const own = await client.clientCredentialsGrant(as, {}, { DPoP })
  const exchanged = await client.genericGrantRequest(as, TOKEN_EXCHANGE, {
    subject_token: subjectToken,
    subject_token_type: ACCESS_TOKEN,
    actor_token: own.access_token,
    actor_token_type: ACCESS_TOKEN,
    audience: config.app.audience,
    scope: 'profile'
  }, { DPoP })
  result.exchanged = {
    access_token: exchanged.access_token,
    token_type: exchanged.token_type,
    issued_token_type: exchanged.issued_token_type,
    scope: exchanged.scope,
    refresh_token: exchanged.refresh_token ?? null,
    jkt: await DPoP.calculateThumbprint()
  }
}

try {
  const c = config.app
  const as = await client.discovery(issuer, c.client_id, c.client_secret, undefined, options)
  const accessToken = await webApp(as)
  await exchange(as, accessToken)
  process.stdout.write(JSON.stringify({ result }) + '\n')
  process.exit(0)
} catch (error) {
  process.stdout.write(JSON.stringify({ error: String(error), cause: JSON.stringify(error.cause ?? ''), code: error.code ?? null, result }) + '\n')
  process.exit(1)
}
