// panva's openid-client (v6) against a live server: the device authorization grant
// (RFC 8628), pushed authorization requests (RFC 9126) and signed request objects (RFC 9101),
// by value and pushed. Driven by tests/interop/test_openid_client_flows.py.
//
// Usage: node openid_client_flows.mjs '<config JSON>'
//   {"issuer": "...", "web": {"client_id", "client_secret", "redirect_uri"},
//    "jar": {"client_id", "client_secret", "redirect_uri", "private_jwk"},
//    "device": {"client_id", "scope"}}
// Each authorization step writes {"authorize": URL} and reads the URL the browser came back
// to from stdin; the device step writes {"device": {...}} and polls while the person answers.
// The last line on stdout is the JSON result of every step.
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

// Send the person to the URL, then redeem the code it brings back.
async function codeFlow (as, url, checks) {
  process.stdout.write(JSON.stringify({ authorize: url.href }) + '\n')
  const callback = new URL(await readLine())
  const tokens = await client.authorizationCodeGrant(as, callback, checks)
  return { sub: tokens.claims().sub, scope: tokens.scope, url_params: [...url.searchParams.keys()].sort() }
}

async function authorizationParameters (redirectUri) {
  const verifier = client.randomPKCECodeVerifier()
  const parameters = {
    redirect_uri: redirectUri,
    scope: 'openid profile',
    code_challenge: await client.calculatePKCECodeChallenge(verifier),
    code_challenge_method: 'S256',
    state: client.randomState(),
    nonce: client.randomNonce()
  }
  const checks = { pkceCodeVerifier: verifier, expectedState: parameters.state, expectedNonce: parameters.nonce }
  return { parameters, checks }
}

async function pushed () {
  const c = config.web
  const as = await client.discovery(issuer, c.client_id, c.client_secret, undefined, options)
  const { parameters, checks } = await authorizationParameters(c.redirect_uri)
  const url = await client.buildAuthorizationUrlWithPAR(as, parameters)
  result.par = await codeFlow(as, url, checks)
}

async function signedRequests () {
  const c = config.jar
  const as = await client.discovery(issuer, c.client_id, c.client_secret, undefined, options)
  const { kid, ...jwk } = c.private_jwk
  const key = await crypto.subtle.importKey(
    'jwk', jwk, { name: 'RSASSA-PKCS1-v1_5', hash: 'SHA-256' }, false, ['sign'])
  let { parameters, checks } = await authorizationParameters(c.redirect_uri)
  const byValue = await client.buildAuthorizationUrlWithJAR(as, parameters, { key, kid })
  result.jar = await codeFlow(as, byValue, checks);
  // JAR and PAR together: the signed request object is what is pushed.
  ({ parameters, checks } = await authorizationParameters(c.redirect_uri))
  const signed = await client.buildAuthorizationUrlWithJAR(as, parameters, { key, kid })
  const url = await client.buildAuthorizationUrlWithPAR(as, signed.searchParams)
  result.jar_par = await codeFlow(as, url, checks)
}

async function device () {
  const c = config.device
  const as = await client.discovery(issuer, c.client_id, undefined, client.None(), options)
  const response = await client.initiateDeviceAuthorization(as, { scope: c.scope })
  process.stdout.write(JSON.stringify({ device: response }) + '\n')
  const tokens = await client.pollDeviceAuthorizationGrant(as, response)
  result.device = {
    access_token: Boolean(tokens.access_token),
    scope: tokens.scope,
    sub: tokens.claims()?.sub ?? null,
    user_code: response.user_code
  }
}

try {
  await pushed()
  await signedRequests()
  await device()
  process.stdout.write(JSON.stringify({ result }) + '\n')
  process.exit(0)
} catch (error) {
  process.stdout.write(JSON.stringify({ error: String(error), cause: String(error.cause ?? ''), code: error.code ?? null, result }) + '\n')
  process.exit(1)
}
