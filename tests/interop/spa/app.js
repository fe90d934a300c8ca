// A single-page app as oidc-client-ts's documentation writes one: a UserManager in its default
// configuration (code flow with PKCE S256, the user kept in sessionStorage) plus loadUserInfo,
// so that sign-in also calls the UserInfo endpoint from script. /config.js sets SPA_CONFIG
// (authority, client_id and the page URLs); tests/interop/test_oidc_client_ts.py drives it.
/* global oidc, SPA_CONFIG */
const manager = new oidc.UserManager({ ...SPA_CONFIG, loadUserInfo: true })

function summary (user) {
  if (!user) return null
  return {
    profile: user.profile,
    access_token: user.access_token,
    refresh_token: user.refresh_token ?? null,
    id_token: user.id_token ?? null,
    token_type: user.token_type,
    scope: user.scope
  }
}

window.spa = {
  signIn: () => manager.signinRedirect(),
  user: async () => summary(await manager.getUser()),
  // With a refresh token oidc-client-ts renews with it; forceIframeAuth uses prompt=none in a
  // hidden iframe instead, riding on the provider's session cookie.
  renew: async (forceIframeAuth = false) => summary(await manager.signinSilent({ forceIframeAuth })),
  revoke: async () => { await manager.revokeTokens(); return summary(await manager.getUser()) }
}

// The redirect back from the provider: finish the sign-in, then go to the app's page, with the
// error in the URL if it failed (shown in #status). In the silent iframe, the library posts the
// answer to the page that opened it.
async function callback () {
  let error = null
  try {
    await manager.signinCallback()
  } catch (failure) {
    error = String(failure)
  }
  if (window.parent === window) {
    window.location.replace('/index.html' + (error ? '?error=' + encodeURIComponent(error) : ''))
  }
}

if (document.body.dataset.page === 'callback') {
  callback()
} else {
  document.getElementById('status').textContent = new URLSearchParams(window.location.search).get('error') ?? ''
}
