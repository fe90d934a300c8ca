"""Form definitions (Flask-WTF: every form carries a CSRF token)."""

import json

from flask_wtf import FlaskForm
from wtforms import (
    BooleanField,
    HiddenField,
    PasswordField,
    RadioField,
    SelectField,
    SelectMultipleField,
    StringField,
    SubmitField,
    TextAreaField,
    widgets,
)
from wtforms.fields.choices import SelectChoice
from wtforms.validators import DataRequired, EqualTo, Length, Optional, Regexp, ValidationError

from website.models.groups import name_problem
from website.models.usernames import normalize_username, username_problem
from website.oauth2.client_metadata import (
    AUTH_METHODS,
    DEVICE_GRANT,
    GRANT_TYPES,
    LEGACY_GRANT_TYPES,
    REQUEST_OBJECT_ALGS,
    RESPONSE_TYPE_GRANTS,
    TOKEN_EXCHANGE,
)
from website.oauth2.keys import ID_TOKEN_ALG, ID_TOKEN_SIGNING_ALGS, USERINFO_SIGNING_ALGS
from website.services.pwned import times_breached
from website.services.branding import color_problem, logo_problem


def username_rule(form, field) -> None:
    """The username rule of ``usernames.username_problem`` (the CLI checks the same)."""
    if field.data and (problem := username_problem(field.data)):
        raise ValidationError(problem)


def not_breached(form, field) -> None:
    """Refuse a password found in the breached-password list (PWNED_PASSWORDS_CHECK)."""
    if field.data and not field.errors and times_breached(field.data):
        raise ValidationError("This password appears in a list of passwords leaked from other sites,"
                              " so attackers try it first. Choose another.")


def new_password_rules(message: str | None = None):
    """The rules every new password obeys (sign-up, change, reset, invitation)."""
    return [DataRequired(), Length(min=8, max=1000, message=message), not_breached]


EMAIL_RULE = Regexp(r"^[^@\s\x00-\x1f\x7f]+@[^@\s\x00-\x1f\x7f]+\.[^@\s\x00-\x1f\x7f]+\Z", message="Enter an email address such as ada@example.com.")


def strip_text(value):
    """Drop the spaces people paste around an address."""
    return value.strip() if isinstance(value, str) else value


GRANT_LABELS = {
    "authorization_code": "Authorization code (with PKCE) — for web, mobile and desktop apps",
    "refresh_token": "Refresh token — keep users signed in",
    "client_credentials": "Client credentials — for services acting on their own behalf",
    "implicit": "Implicit (legacy, discouraged) — tokens in the URL; use the code flow instead",
    "password": "Password (legacy, discouraged) — the app sees the user's password",
    DEVICE_GRANT: "Device code — for TVs, consoles and tools without a browser: people type a code at /device",
    TOKEN_EXCHANGE: "Token exchange (RFC 8693) — a service swaps a user's token for one to another API",
}


RESPONSE_TYPE_LABELS = {
    "code": "code — authorization code flow (recommended)",
    "token": "token — OAuth implicit (legacy)",
    "id_token": "id_token — OpenID Connect implicit, ID token only (legacy)",
    "id_token token": "id_token token — OpenID Connect implicit (legacy)",
    "code id_token": "code id_token — OpenID Connect hybrid",
    "code token": "code token — OpenID Connect hybrid",
    "code id_token token": "code id_token token — OpenID Connect hybrid",
}


AUTH_METHOD_LABELS = {
    "client_secret_basic": "Client secret in HTTP Basic (confidential client)",
    "client_secret_post": "Client secret in the POST body (confidential client)",
    "private_key_jwt": "private_key_jwt — a JWT signed with the client's own key (no secret)",
    "none": "None — public client (browser or native app), PKCE required",
}


class SignupForm(FlaskForm):
    username = StringField("Username", filters=[normalize_username], validators=[DataRequired(), username_rule])
    email = StringField("Email", validators=[DataRequired(), Length(max=254), EMAIL_RULE])
    password = PasswordField("Password", validators=new_password_rules())
    confirm = PasswordField(
        "Repeat password", validators=[DataRequired(), EqualTo("password", message="The passwords differ.")]
    )
    submit = SubmitField("Sign up")


class InvitationSignupForm(FlaskForm):
    """Sign-up through an invitation: the address is the one the invitation was sent to."""

    username = StringField("Username", filters=[normalize_username], validators=[DataRequired(), username_rule])
    password = PasswordField("Password", validators=new_password_rules())
    confirm = PasswordField(
        "Repeat password", validators=[DataRequired(), EqualTo("password", message="The passwords differ.")]
    )
    submit = SubmitField("Create account")


class ForgotPasswordForm(FlaskForm):
    identifier = StringField("Username or email", filters=[strip_text],
                             validators=[DataRequired(message="Enter your username or email address."),
                                         Length(max=254)])
    submit = SubmitField("Send reset link")


class ResetPasswordForm(FlaskForm):
    password = PasswordField("New password", validators=new_password_rules())
    confirm = PasswordField(
        "Repeat new password", validators=[DataRequired(), EqualTo("password", message="The passwords differ.")]
    )
    submit = SubmitField("Set new password")


class InviteForm(FlaskForm):
    email = StringField("Email address to invite", filters=[strip_text],
                        validators=[DataRequired(), Length(max=254), EMAIL_RULE])
    submit = SubmitField("Send invitation")


class LoginForm(FlaskForm):
    username = StringField("Username", validators=[DataRequired(), Length(max=40)])
    password = PasswordField("Password", validators=[DataRequired(), Length(max=1000)])
    submit = SubmitField("Log in")


class MultiCheckboxField(SelectMultipleField):
    widget = widgets.ListWidget(prefix_label=False)
    option_widget = widgets.CheckboxInput()


class ClientForm(FlaskForm):
    client_name = StringField("Name", validators=[DataRequired(), Length(max=100)])
    client_uri = StringField("Home page", validators=[Optional(), Length(max=2000)])
    logo_uri = StringField("Logo URL", validators=[Optional(), Length(max=2000)])
    redirect_uris = TextAreaField("Redirect URIs (one per line)", validators=[Length(max=20000)])
    post_logout_redirect_uris = TextAreaField("Logout URLs (one per line)", validators=[Length(max=20000)])
    allowed_origins = TextAreaField("Allowed web origins (one per line)", validators=[Length(max=20000)])
    grant_types = MultiCheckboxField(
        "Grant types",
        choices=[SelectChoice(g, GRANT_LABELS[g]) for g in GRANT_TYPES],
        default=["authorization_code", "refresh_token"],
    )
    response_types = MultiCheckboxField(
        "Response types (leave all unticked for the grants' defaults)",
        choices=[SelectChoice(r, RESPONSE_TYPE_LABELS[r]) for r in RESPONSE_TYPE_GRANTS],
    )
    scope = StringField("Scopes (space-separated)", validators=[Length(max=1000)])
    token_endpoint_auth_method = SelectField(
        "Client authentication",
        choices=[SelectChoice(m, AUTH_METHOD_LABELS[m]) for m in AUTH_METHODS],
        default="client_secret_basic",
    )
    id_token_signed_response_alg = SelectField(
        "ID tokens signed with",
        choices=[SelectChoice("", f"{ID_TOKEN_ALG} (the OpenID Connect default)"),
                 *(SelectChoice(alg, alg) for alg in ID_TOKEN_SIGNING_ALGS if alg != ID_TOKEN_ALG)],
        default="",
    )
    userinfo_signed_response_alg = SelectField(
        "UserInfo response",
        choices=[SelectChoice("", "Plain JSON"),
                 *(SelectChoice(alg, f"Signed JWT ({alg})") for alg in USERINFO_SIGNING_ALGS)],
        default="",
    )
    strict_auth_method = BooleanField("Strict: accept only this secret method (not both Basic and POST body)")
    require_mfa = BooleanField("Require a second factor: people sign in to this app with two-step sign-in")
    require_pushed_authorization_requests = BooleanField(
        "Require pushed authorization requests (PAR): refuse requests the app did not push first")
    request_object_signing_alg = SelectField(
        "Request objects",
        choices=[SelectChoice("", "Signed with any supported algorithm"),
                 *(SelectChoice(alg, "Unsigned (alg none) — not recommended" if alg == "none" else f"Signed with {alg} only")
                   for alg in REQUEST_OBJECT_ALGS)],
        default="",
    )
    dpop_bound_access_tokens = BooleanField("DPoP: the app always proves its key (RFC 9449); "
                                            "token requests without a DPoP proof are refused")
    require_verified_email = BooleanField("Only for people whose email address is verified")
    jwks_uri = StringField("JWKS URL (private_key_jwt)", validators=[Optional(), Length(max=2000)])
    jwks = TextAreaField("JWKS, public keys as JSON (private_key_jwt, instead of a URL)",
                         validators=[Length(max=20000)])
    backchannel_logout_uri = StringField("Back-channel logout URL", validators=[Optional(), Length(max=2000)])
    backchannel_logout_session_required = BooleanField("The app needs the session id (sid) in logout tokens")
    frontchannel_logout_uri = StringField("Front-channel logout URL", validators=[Optional(), Length(max=2000)])
    frontchannel_logout_session_required = BooleanField("Add iss and sid to the front-channel logout URL")
    contacts = TextAreaField("Contact emails (one per line)", validators=[Length(max=5000)])
    access_token_lifetime = StringField("Access token lifetime (seconds; empty: the site's)",
                                        validators=[Optional(), Length(max=12)])
    refresh_token_lifetime = StringField("Refresh token lifetime (seconds; empty: the site's)",
                                         validators=[Optional(), Length(max=12)])
    id_token_lifetime = StringField("ID token lifetime (seconds; empty: the site's)",
                                    validators=[Optional(), Length(max=12)])
    submit = SubmitField("Save")

    legacy_grant_types = LEGACY_GRANT_TYPES

    def to_metadata(self) -> dict:
        """The form's fields as RFC 7591 metadata."""
        metadata = {
            "client_name": self.client_name.data,
            "client_uri": self.client_uri.data,
            "logo_uri": self.logo_uri.data,
            "redirect_uris": (self.redirect_uris.data or "").split(),
            "post_logout_redirect_uris": (self.post_logout_redirect_uris.data or "").split(),
            "allowed_origins": (self.allowed_origins.data or "").split(),
            "grant_types": self.grant_types.data or [],
            "scope": self.scope.data,
            "token_endpoint_auth_method": self.token_endpoint_auth_method.data,
            "contacts": (self.contacts.data or "").split(),
            "id_token_signed_response_alg": self.id_token_signed_response_alg.data,
            "userinfo_signed_response_alg": self.userinfo_signed_response_alg.data,
            "strict_auth_method": bool(self.strict_auth_method.data),
            "require_mfa": bool(self.require_mfa.data),
            "require_pushed_authorization_requests": bool(self.require_pushed_authorization_requests.data),
            "request_object_signing_alg": self.request_object_signing_alg.data,
            "dpop_bound_access_tokens": bool(self.dpop_bound_access_tokens.data),
            "require_verified_email": bool(self.require_verified_email.data),
            "jwks_uri": self.jwks_uri.data,
            "jwks": _json_or_text(self.jwks.data),
            "backchannel_logout_uri": self.backchannel_logout_uri.data,
            "backchannel_logout_session_required": bool(self.backchannel_logout_session_required.data),
            "frontchannel_logout_uri": self.frontchannel_logout_uri.data,
            "frontchannel_logout_session_required": bool(self.frontchannel_logout_session_required.data),
            "access_token_lifetime": (self.access_token_lifetime.data or "").strip() or None,
            "refresh_token_lifetime": (self.refresh_token_lifetime.data or "").strip() or None,
            "id_token_lifetime": (self.id_token_lifetime.data or "").strip() or None,
        }
        if self.response_types.data:
            metadata["response_types"] = self.response_types.data
        return metadata


def _json_or_text(text: str | None):
    """Parsed JSON, or the text itself for the metadata check to refuse with a message."""
    if not (text or "").strip():
        return None
    try:
        return json.loads(text)
    except ValueError:
        return text


class ConsentForm(FlaskForm):
    allow = SubmitField("Allow")
    deny = SubmitField("Deny")


class UserCodeForm(FlaskForm):
    """The code a device shows, typed at /device."""

    user_code = StringField("Code", validators=[DataRequired(message="Type the code your device shows."),
                                                 Length(max=40)])
    submit = SubmitField("Continue")


class DeviceConsentForm(FlaskForm):
    """Allow or Deny a device, for the user code checked on the page before."""

    user_code = HiddenField(validators=[DataRequired(), Length(max=40)])
    allow = SubmitField("Allow")
    deny = SubmitField("Deny")


class BrandingForm(FlaskForm):
    """The site's branding, as an administrator sets it (empty: the configuration's value)."""

    site_name = StringField("Site name", filters=[strip_text], validators=[DataRequired(), Length(max=60)])
    logo_url = StringField("Logo URL", filters=[strip_text], validators=[Optional(), Length(max=2000)])
    primary_color = StringField("Primary colour", filters=[strip_text], validators=[DataRequired(), Length(max=7)])
    support_email = StringField("Support address", filters=[strip_text],
                                validators=[Optional(), Length(max=254), EMAIL_RULE])
    submit = SubmitField("Save branding")

    def validate_logo_url(self, field):
        if problem := logo_problem(field.data or ""):
            raise ValidationError(problem)

    def validate_primary_color(self, field):
        if problem := color_problem(field.data or ""):
            raise ValidationError(problem)


class AdminUserForm(FlaskForm):
    """An administrator edits a person's profile."""

    name = StringField("Full name", filters=[strip_text], validators=[Optional(), Length(max=100)])
    email = StringField("Email", filters=[strip_text], validators=[Optional(), Length(max=254), EMAIL_RULE])
    email_verified = BooleanField("The address is verified")
    submit = SubmitField("Save profile")


class DeleteUserForm(FlaskForm):
    """What happens to the clients of a person being deleted, chosen explicitly."""

    clients = RadioField("Their clients", choices=[SelectChoice("delete", "Delete them with the account"),
                                                  SelectChoice("transfer", "Give them to another person")],
                         validators=[Optional()])
    heir = StringField("Username of the new owner", filters=[strip_text], validators=[Optional(), Length(max=40)])
    submit = SubmitField("Delete user")


class TransferOwnerForm(FlaskForm):
    owner = StringField("New owner (username; empty: nobody)", filters=[strip_text],
                        validators=[Optional(), Length(max=40)])
    submit = SubmitField("Change owner")


class GroupForm(FlaskForm):
    name = StringField("Name", filters=[strip_text], validators=[DataRequired(), Length(max=64)])
    description = StringField("Description", filters=[strip_text], validators=[Optional(), Length(max=200)])
    submit = SubmitField("Create group")

    def validate_name(self, field):
        if problem := name_problem(field.data or ""):
            raise ValidationError(problem)


class MemberForm(FlaskForm):
    username = StringField("Username", filters=[strip_text], validators=[DataRequired(), Length(max=40)])
    submit = SubmitField("Add")


class RoleForm(FlaskForm):
    name = StringField("Role name", filters=[strip_text], validators=[DataRequired(), Length(max=64)])
    description = StringField("What it allows", filters=[strip_text], validators=[Optional(), Length(max=200)])
    submit = SubmitField("Add role")

    def validate_name(self, field):
        if problem := name_problem(field.data or "", "A role name"):
            raise ValidationError(problem)


class AssignRoleForm(FlaskForm):
    role = SelectField("Role", choices=[])
    holder = StringField("Username, or group: followed by a group name", filters=[strip_text],
                         validators=[DataRequired(), Length(max=80)])
    submit = SubmitField("Give role")


class AllowedGroupsForm(FlaskForm):
    groups = MultiCheckboxField("Only members of these groups may use it (none ticked: everyone)", choices=[])
    submit = SubmitField("Save who may use it")


class ConfirmForm(FlaskForm):
    """A form with only its CSRF token, for buttons that change something (log out, delete)."""

    confirm = BooleanField("Confirm")


class ChangePasswordForm(FlaskForm):
    current_password = PasswordField("Current password", validators=[DataRequired(), Length(max=1000)])
    new_password = PasswordField("New password", validators=new_password_rules("Use 8 to 1000 characters."))
    confirm = PasswordField(
        "Repeat new password",
        validators=[DataRequired(), EqualTo("new_password", message="The passwords differ.")],
    )
    sign_out_others = BooleanField("Sign out my other sessions", default=True)
    submit = SubmitField("Change password")


class ChangeEmailForm(FlaskForm):
    email = StringField(
        "New email", filters=[strip_text], validators=[DataRequired(), Length(max=254), EMAIL_RULE]
    )
    current_password = PasswordField("Current password", validators=[DataRequired(), Length(max=1000)])
    submit = SubmitField("Change email")


class DeleteAccountForm(FlaskForm):
    """Deleting one's own account: the password and the username typed out."""

    password = PasswordField("Your password", validators=[DataRequired(), Length(max=1000)])
    confirmation = StringField("Type your username to confirm", filters=[strip_text],
                               validators=[DataRequired(), Length(max=100)])
    submit = SubmitField("Delete my account")


class TotpCodeForm(FlaskForm):
    """A six-digit code from an authenticator app (spaces people type are dropped)."""

    code = StringField("Code from your authenticator app", filters=[lambda v: "".join(v.split()) if isinstance(v, str) else v],
                       validators=[DataRequired(message="Enter the 6-digit code."),
                                   Regexp(r"^[0-9]{6}\Z", message="The code is 6 digits, such as 123456.")])
    submit = SubmitField("Verify")


class RecoveryCodeForm(FlaskForm):
    code = StringField("Recovery code", filters=[strip_text],
                       validators=[DataRequired(message="Enter one of your recovery codes."), Length(max=40)])
    submit = SubmitField("Use recovery code")


class PasswordConfirmForm(FlaskForm):
    """Re-enter the password before a change to the account's second factors."""

    current_password = PasswordField("Current password", validators=[DataRequired(), Length(max=1000)])
    submit = SubmitField("Confirm")


class LinkUpstreamForm(FlaskForm):
    """The local password that proves the account before an upstream identity is linked to it."""

    password = PasswordField("Password", validators=[DataRequired(), Length(max=1000)])
    submit = SubmitField("Link and continue")


UPSTREAM_PRESET_LABELS = [
    ("", "None: any OpenID Connect issuer, or OAuth 2.0 with the URLs below"),
    ("google", "Google"),
    ("microsoft", "Microsoft Entra ID (give the tenant ID)"),
    ("gitlab", "GitLab.com"),
    ("keycloak", "Keycloak (give the realm's issuer)"),
    ("idp", "Another instance of this server (give its issuer)"),
    ("github", "GitHub (OAuth 2.0: user and verified-emails API)"),
]


class UpstreamEditForm(FlaskForm):
    """An upstream provider's settings an administrator changes later (a new client secret
    only when one is typed)."""

    display_name = StringField("Button text", filters=[strip_text], validators=[Optional(), Length(max=80)])
    scope = StringField("Scope", filters=[strip_text], validators=[DataRequired(), Length(max=500)])
    client_secret = PasswordField("New client secret (leave empty to keep the current one)",
                                  validators=[Optional(), Length(max=2000)])
    claim_map = TextAreaField("Claim mapping (local=upstream, one a line)", validators=[Optional(), Length(max=2000)])
    overwrite_name = BooleanField("Each sign-in overwrites the name here")
    overwrite_email = BooleanField("Each sign-in overwrites the email here (only a verified one)")
    overwrite_groups = BooleanField("Each sign-in sets membership of the groups here that the upstream names")
    end_upstream_session = BooleanField("Logging out here also ends the session at the upstream")
    submit = SubmitField("Save changes")


class UpstreamForm(FlaskForm):
    """An upstream provider, as an administrator adds it."""

    preset = SelectField("Preset", choices=[SelectChoice(v, label) for v, label in UPSTREAM_PRESET_LABELS], default="")
    name = StringField("Name", filters=[strip_text], validators=[DataRequired(), Length(max=40)])
    display_name = StringField("Button text", filters=[strip_text], validators=[Optional(), Length(max=80)])
    kind = SelectField("Kind", choices=[SelectChoice("oidc", "OpenID Connect (discovery)"),
                                        SelectChoice("oauth2", "OAuth 2.0")], default="oidc")
    issuer = StringField("Issuer", filters=[strip_text], validators=[Optional(), Length(max=500)])
    tenant = StringField("Tenant ID (Microsoft)", filters=[strip_text], validators=[Optional(), Length(max=100)])
    client_id = StringField("Client ID", filters=[strip_text], validators=[DataRequired(), Length(max=255)])
    client_secret = PasswordField("Client secret", validators=[DataRequired(), Length(max=2000)])
    scope = StringField("Scope", filters=[strip_text], validators=[Optional(), Length(max=500)])
    authorize_url = StringField("Authorization URL (OAuth 2.0)", filters=[strip_text],
                                validators=[Optional(), Length(max=500)])
    token_url = StringField("Token URL (OAuth 2.0)", filters=[strip_text], validators=[Optional(), Length(max=500)])
    userinfo_url = StringField("Userinfo URL (OAuth 2.0)", filters=[strip_text],
                               validators=[Optional(), Length(max=500)])
    emails_url = StringField("Verified-emails URL (OAuth 2.0, GitHub-style)", filters=[strip_text],
                             validators=[Optional(), Length(max=500)])
    claim_map = TextAreaField("Claim mapping (local=upstream, one a line)", validators=[Optional(), Length(max=2000)])
    overwrite_name = BooleanField("Each sign-in overwrites the name here", default=True)
    overwrite_email = BooleanField("Each sign-in overwrites the email here (only a verified one)")
    overwrite_groups = BooleanField("Each sign-in sets membership of the groups here that the upstream names")
    end_upstream_session = BooleanField("Logging out here also ends the session at the upstream")
    submit = SubmitField("Add upstream")
