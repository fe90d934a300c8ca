// An in-memory OpenID Provider (panva's oidc-provider, OpenID Certified) for the upstream
// sign-in tests. Configuration comes as one JSON argument:
//   {"client": {client_id, client_secret, redirect_uris, post_logout_redirect_uris},
//    "accounts": {"<login>": {"email": ..., "email_verified": ..., "name": ..., "groups": [...]}}}
// It listens on a free loopback port and prints one line: {"issuer": "http://127.0.0.1:PORT"}.
// The log-in and consent pages are the provider's own development interactions: any login
// name listed in "accounts" signs in (the password field is not checked), with the acr asked for.
import http from 'node:http';
import Provider from 'oidc-provider';

const config = JSON.parse(process.argv[2]);
const server = http.createServer();
server.listen(0, '127.0.0.1', () => {
  const issuer = `http://127.0.0.1:${server.address().port}`;
  const provider = new Provider(issuer, {
    clients: [{
      client_id: config.client.client_id,
      client_secret: config.client.client_secret,
      redirect_uris: config.client.redirect_uris,
      post_logout_redirect_uris: config.client.post_logout_redirect_uris || [],
      response_types: ['code'],
      grant_types: ['authorization_code'],
      token_endpoint_auth_method: config.client.token_endpoint_auth_method || 'client_secret_basic',
    }],
    claims: {
      openid: ['sub'],
      email: ['email', 'email_verified'],
      profile: ['name'],
      groups: ['groups'],
      acr: null,
    },
    acrValues: ['urn:example:loa:1', 'urn:example:loa:2'],
    async findAccount(ctx, id) {
      const account = config.accounts[id];
      if (!account) return undefined;
      return { accountId: id, async claims() { return { sub: id, ...account }; } };
    },
    features: {
      devInteractions: { enabled: true },
      rpInitiatedLogout: { enabled: true },
    },
    pkce: { required: () => true },
    cookies: { keys: ['upstream-test-cookie-key'] },
  });
  // The development log-in page records no authentication context: say the person signed in
  // at the strongest level the request asked for (acr_values), else the first one, so that the
  // id_token carries an acr as a real provider's does.
  const interactionFinished = provider.interactionFinished.bind(provider);
  provider.interactionFinished = async (req, res, result, options) => {
    if (result.login) {
      const { params } = await provider.interactionDetails(req, res);
      const asked = (params.acr_values || '').split(' ').filter((value) => value);
      result.login.acr = asked.length ? asked[asked.length - 1] : 'urn:example:loa:1';
    }
    return interactionFinished(req, res, result, options);
  };
  server.on('request', provider.callback());
  process.stdout.write(JSON.stringify({ issuer }) + '\n');
});
process.stdin.on('end', () => process.exit(0));
process.stdin.resume();
