"""Blueprint: the OAuth 2.0 and OpenID Connect protocol endpoints (authorize, token,
revoke, introspect, register, userinfo, discovery, JWKS), with Auth0-style aliases."""

from urllib.parse import urlencode, urlsplit

from authlib.oauth2 import OAuth2Error
from authlib.oauth2.rfc7591 import InvalidClientMetadataError
from authlib.oidc.core.errors import InteractionRequiredError
from flask import (
    Blueprint,
    g,
    json,
    jsonify,
    redirect,
    render_template,
    request,
    session,
    url_for,
)

from website.extensions import csrf, db
from website.forms import ConfirmForm, ConsentForm
from website.http.cors import ANY, CLIENT
from website.http.endpoints import FORM, JSON, protocol_endpoint
from website.http.documents import document_response
from website.oauth2.claims import CLAIM_DESCRIPTIONS
from website.oauth2.compat import issuer_parameter
from website.oauth2.device import DeviceAuthorizationEndpoint
from website.oauth2.discovery import DISCOVERY_MAX_AGE, discovery_json
from website.oauth2.endpoints import IntrospectionEndpoint, introspection_below_flask
from website.oauth2.keys import JWKS_MAX_AGE, jwks_json
from website.oauth2.oidc import plain_userinfo
from website.oauth2.par import PushedAuthorizationEndpoint, spend_pushed_request
from website.oauth2.registration import ClientConfigurationEndpoint, ClientRegistrationEndpoint
from website.oauth2.response_modes import FORM_POST, can_form_post, response_parameters
from website.oauth2.scopes import scope_descriptions
from website.oauth2.server import authorization
from website.services.accounts import verification_required
from website.services.consent import (
    consent_required,
    effective_scope,
    remember_consent,
    requested_audience,
    requested_claims,
)
from website.services.login_policy import authentication_step, redirect_target
from website.services.mfa import begin_step_up
from website.services.sessions import expect_login_for, logged_in_for, remember_client_in_session
from website.store import audit
from website.store.apis import cached_api
from website.store.groups import may_use_client
from website.store.upstreams import find_upstream

#: The consent form's own fields, never parameters of the authorization request.
CONSENT_FIELDS = ("csrf_token", "allow", "deny")


def is_consent_decision() -> bool:
    """Tell whether this is the consent form coming back (Allow or Deny), not a request a
    client sent; only the decision needs the CSRF token."""
    return request.method == "POST" and any(name in request.form for name in CONSENT_FIELDS)


def authorization_parameters() -> list[tuple[str, str]]:
    """The authorization request's parameters: the query, and the body of a request a client
    POSTed (OIDC Core §3.1.2.1: the endpoint takes GET and POST)."""
    pairs = list(request.args.items(multi=True))
    if request.method == "POST" and not is_consent_decision():
        pairs += list(request.form.items(multi=True))
    return pairs


def authorization_request_url(pairs) -> str:
    """This endpoint with the request's parameters as a GET URL: a POSTed request's way back
    from the log-in page, and where the consent form posts."""
    return request.path + ("?" + urlencode(pairs) if pairs else "")


def return_url() -> str:
    """This authorization request as it comes back after a log-in or a second factor: without
    "login" in prompt and without max_age, so the fresh log-in satisfies it instead of asking
    again; the id_token's auth_time tells the client. Those of a request object or a pushed
    request cannot be dropped: the session notes the request instead (``logged_in_for``)."""
    back = []
    parameters = authorization_parameters()
    for key, value in parameters:
        if key == "max_age":
            continue
        if key == "prompt":
            value = " ".join(p for p in value.split() if p != "login")
            if not value:
                continue
        back.append((key, value))
    return authorization_request_url(back)


def login_redirect(step: str, grant) -> str:
    """The log-in (or sign-up) page, returning to this authorization request afterwards; or
    straight to the upstream provider an app named (Keycloak's kc_idp_hint, idp_hint)."""
    args = {"next": return_url()}
    if getattr(grant.request, "pushed_request_id", None) or getattr(grant.request, "request_object", False):
        expect_login_for(args["next"])
    data = grant.request.payload.data
    login_hint = data.get("login_hint")
    hint = data.get("idp_hint") or data.get("kc_idp_hint")
    if step == "login" and hint and find_upstream(hint) is not None:
        return url_for("upstream.start", name=hint, **args, **({"login_hint": login_hint} if login_hint else {}))
    if step == "login" and login_hint:
        args["login_hint"] = login_hint
    return url_for("auth.signup" if step == "signup" else "auth.login", **args)


bp = Blueprint("oauth", __name__)


def render_authorization_error(error: OAuth2Error, grant=None):
    """Redirect the error to the client only when its redirect URI was validated and the
    person is signed in; otherwise show it to the person.

    Anyone can register a client with their own redirect URIs, so an error sent to a visitor
    who is not signed in would make this server an open redirector (RFC 9700 §4.11.2: the
    person is authenticated first). The page names where the app wants to go, with a link.
    """
    if error.redirect_uri:
        response = authorization.handle_error_response(None, error)
        issuer_parameter.add_issuer_parameter(authorization, response)
        if g.user is not None:
            return _deliver(response, error.redirect_uri, grant)
        continue_url = response.headers["Location"]
        form_post = None
        if _form_post(error.redirect_uri, grant):
            form_post = response_parameters(continue_url, error.redirect_uri)
            continue_url = error.redirect_uri
        return render_template("oauth/error.html", error=error, continue_url=continue_url,
                               form_post=form_post, continue_host=urlsplit(continue_url).netloc), 400
    return render_template("oauth/error.html", error=error), error.status_code


def _form_post(redirect_uri: str, grant=None) -> bool:
    """Tell whether the response goes by response_mode=form_post (to an http(s) redirect URI:
    login_policy refuses form_post to others). The grant's parameters, when there is one,
    include those of a request object or a pushed request."""
    parameters = grant.request.payload.data if grant is not None else dict(authorization_parameters())
    return parameters.get("response_mode") == FORM_POST and can_form_post(redirect_uri)


def _deliver(response, redirect_uri: str, grant=None):
    """The redirect to the client as it goes: with response_mode=form_post, a page whose form
    posts the redirect's parameters (iss and state among them) to the redirect URI."""
    if not response.location or not _form_post(redirect_uri, grant):
        return response
    params = response_parameters(response.location, redirect_uri)
    return render_template("oauth/form_post.html", action=redirect_uri, params=params), 200, {
        "Cache-Control": "no-store"}


def _authorization_response(grant, grant_user):
    """The response to the client; a successful one is remembered in the session. A pushed
    request's request_uri is spent here, by the one response it gets."""
    try:
        spend_pushed_request(grant)
    except OAuth2Error as error:
        return render_authorization_error(error, grant)
    if grant_user is not None:
        remember_client_in_session(grant.client.client_id)
    response = authorization.create_authorization_response(grant=grant, grant_user=grant_user)
    return _deliver(response, redirect_target(grant)[0], grant)


# url_for, and so discovery, gives the route nearest the function; /authorize is Auth0's path.
@bp.route("/authorize", methods=["GET", "POST"])
@bp.route("/oauth/authorize", methods=["GET", "POST"])
# Exempt from CSRF as a whole: a client's request (GET or POST) carries no token; the
# consent decision posted back is checked below.
@protocol_endpoint(FORM, json=False, csrf_exempt=True, advertise="authorization_endpoint")
def authorize():
    """Ask the signed-in person to allow or deny the client's request."""
    decision = is_consent_decision()
    if decision:
        csrf.protect()  # raises CSRFError (a 400 page) without a valid token
    grant = None
    try:
        grant = authorization.get_consent_grant(end_user=g.user)
        step = authentication_step(grant, g.user, session.get("auth_time"), session.get("amr"),
                                   logged_in_for(authorization_request_url(authorization_parameters())))
    except OAuth2Error as error:
        return render_authorization_error(error, grant)
    if step == "mfa":
        # Signed in, but with less than the app asks for: a second factor, then back here.
        return redirect(url_for(begin_step_up(g.user, return_url())))
    if step is not None:
        return redirect(login_redirect(step, grant))
    if g.user is not None and not may_use_client(g.user.id, grant.client.client_id):
        audit.record("client_access_refused", user=g.user, client_id=grant.client.client_id)
        db.session.commit()
        return render_template("error.html", title="Not for your account", message=(
            f"{grant.client.client_name or 'This app'} is only for members of certain groups, and"
            " your account is in none of them. Ask an administrator if you need it.")), 403
    if verification_required(grant.client, g.user):
        # No code (nor consent) until the address is confirmed (REQUIRE_VERIFIED_EMAIL or the
        # client's require_verified_email); prompt=none may show no page, so the app is told.
        if "none" in (grant.request.payload.data.get("prompt") or "").split():
            redirect_uri, fragment = redirect_target(grant)
            return render_authorization_error(InteractionRequiredError(
                "The person must confirm their email address first.", state=grant.request.payload.state,
                redirect_uri=redirect_uri, redirect_fragment=fragment))
        return render_template("links/verify_first.html", client=grant.client, user=g.user,
                               form=ConfirmForm()), 403
    if not decision and not consent_required(grant, g.user):
        # The user already allowed these scopes: no need to ask again.
        return _authorization_response(grant, g.user)
    form = ConsentForm()
    if not decision or not form.validate_on_submit():
        audience = requested_audience(grant)
        return render_template("oauth/authorize.html", grant=grant, form=form,
                               action=authorization_request_url(authorization_parameters()),
                               scopes=effective_scope(grant).split(), claims=requested_claims(grant),
                               claim_descriptions=CLAIM_DESCRIPTIONS,
                               apis=[cached_api(audience)] if audience else [],
                               scope_descriptions=scope_descriptions()), 400 if decision else 200
    grant_user = g.user if form.allow.data else None
    if grant_user is not None:
        remember_consent(grant_user, grant.client, effective_scope(grant), requested_audience(grant))
    audit.record("consent_granted" if grant_user else "consent_denied", user=g.user,
                 client_id=grant.client.client_id, scope=grant.request.scope,
                 audience=requested_audience(grant))
    db.session.commit()
    return _authorization_response(grant, grant_user)


@bp.route("/oauth/token", methods=["POST"])
# JSON bodies too: Auth0's SDKs post token requests as JSON.
@protocol_endpoint(FORM, JSON, client_auth=True, advertise="token_endpoint", cors=CLIENT)
def issue_token():
    """Exchange a grant for tokens (RFC 6749 §3.2); a JSON body works too, as with Auth0."""
    return authorization.create_token_response()


@bp.route("/oauth/device/code", methods=["POST"])
@protocol_endpoint(FORM, client_auth=True, advertise="device_authorization_endpoint", cors=CLIENT,
                   setting="OAUTH2_DEVICE_FLOW")
def device_authorization():
    """Give a device a device code and a user code for the person to type at /device (RFC 8628 §3.1)."""
    return authorization.create_endpoint_response(DeviceAuthorizationEndpoint.ENDPOINT_NAME)


@bp.route("/oauth/par", methods=["POST"])
@protocol_endpoint(FORM, client_auth=True, advertise="pushed_authorization_request_endpoint", cors=CLIENT,
                   setting="OAUTH2_PAR")
def push_authorization_request():
    """Take an authorization request from an authenticated client; answer its request_uri (RFC 9126)."""
    return authorization.create_endpoint_response(PushedAuthorizationEndpoint.ENDPOINT_NAME)


@bp.route("/oauth/revoke", methods=["POST"])
@protocol_endpoint(FORM, client_auth=True, advertise="revocation_endpoint", cors=CLIENT)
def revoke_token():
    """Revoke an access or refresh token (RFC 7009)."""
    return authorization.create_endpoint_response("revocation")


def userinfo_below_flask(token_string: str) -> bytes | None:
    """UserInfo's plain JSON answer, given by the front below Flask (http/front.py), as
    Authlib writes it; None for everything else, which the endpoint answers."""
    claims = plain_userinfo(token_string)
    return None if claims is None else json.dumps(claims).encode()


@bp.route("/userinfo", methods=["GET", "POST"])
@bp.route("/oauth/userinfo", methods=["GET", "POST"])
@protocol_endpoint(FORM, advertise="userinfo_endpoint", cors=CLIENT, bearer_answer=userinfo_below_flask)
def userinfo():
    """The claims about the token's user that its scopes allow (OpenID Connect UserInfo)."""
    return authorization.create_endpoint_response("userinfo")


@bp.route("/.well-known/jwks.json")
@protocol_endpoint(advertise="jwks_uri", cors=ANY, document=True)
def jwks():
    """The public keys that verify id_tokens (JWKS), old ones until their tokens expire."""
    return document_response(jwks_json(), JWKS_MAX_AGE)


@bp.route("/.well-known/openid-configuration")
@bp.route("/.well-known/oauth-authorization-server")
@protocol_endpoint(cors=ANY, document=True)
def discovery():
    """OpenID Connect Discovery and RFC 8414 metadata (one document serves both)."""
    return document_response(discovery_json(authorization), DISCOVERY_MAX_AGE)


@bp.route("/oauth/introspect", methods=["POST"])
@protocol_endpoint(FORM, client_auth=True, advertise="introspection_endpoint", cors=CLIENT,
                   client_answer=introspection_below_flask)
def introspect_token():
    """Tell an authenticated client whether its token is active (RFC 7662)."""
    return authorization.create_endpoint_response(IntrospectionEndpoint.ENDPOINT_NAME)


def _json_body_error():
    """A JSON error for a body that is not a JSON object, before Authlib tries to parse it."""
    if request.method in ("POST", "PUT") and not isinstance(request.get_json(silent=True), dict):
        error = InvalidClientMetadataError("Send the client metadata as a JSON object "
                                           "(Content-Type: application/json).")
        return jsonify(dict(error.get_body())), error.status_code, {"Cache-Control": "no-store"}
    return None


@bp.route("/oauth/register", methods=["POST"])
@protocol_endpoint(JSON, body_error="invalid_client_metadata", advertise="registration_endpoint")
def register_client():
    """Register a client (RFC 7591); the answer holds its secret, shown this once."""
    return _json_body_error() or authorization.create_endpoint_response(ClientRegistrationEndpoint.ENDPOINT_NAME)


@bp.route("/oauth/register/<client_id>", methods=["GET", "PUT", "DELETE"])
@protocol_endpoint(JSON, body_error="invalid_client_metadata")
def manage_client(client_id: str):
    """Read, replace or delete a dynamically registered client (RFC 7592)."""
    return _json_body_error() or authorization.create_endpoint_response(
        ClientConfigurationEndpoint.ENDPOINT_NAME)
