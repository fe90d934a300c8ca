"""Configuration defaults, read from the environment.

Every key can be set as an environment variable of the same name; tests pass a dict to
``create_app``. Secrets never live in the repository: with no ``SECRET_KEY`` (or no
``KEY_ENCRYPTION_KEYS``) in the environment, ``flask initdb`` writes a generated one to the
instance folder.
"""

import ipaddress
import os
import secrets
import tempfile
from pathlib import Path
from urllib.parse import urlsplit

from cryptography.fernet import Fernet, MultiFernet

#: Defaults, overridden by environment variables of the same name.
DEFAULTS = {
    "DATABASE_URL": None,  # default: a SQLite file in the instance folder
    "OAUTH2_ISSUER": None,  # default: the URL the request came in on
    "OAUTH2_SCOPES_SUPPORTED": "openid profile email offline_access groups",
    "OAUTH2_ACCESS_TOKEN_LIFETIME": 3600,
    "OAUTH2_REFRESH_TOKEN_LIFETIME": 30 * 24 * 3600,
    "OAUTH2_CODE_LIFETIME": 300,
    "OAUTH2_ID_TOKEN_LIFETIME": 3600,
    # The longest lifetimes a client may register for its own tokens (access_token_lifetime,
    # refresh_token_lifetime, id_token_lifetime in its metadata); the shortest is 60 s.
    "OAUTH2_MAX_ACCESS_TOKEN_LIFETIME": 24 * 3600,
    "OAUTH2_MAX_REFRESH_TOKEN_LIFETIME": 365 * 24 * 3600,
    "OAUTH2_MAX_ID_TOKEN_LIFETIME": 24 * 3600,
    # Seconds between checks for signing keys rotated by another instance (JWKS, signing).
    "OIDC_KEY_CHECK_INTERVAL": 1,
    # Seconds between checks for clients and APIs changed by another instance (the token
    # endpoint's in-process cache, store/cache.py); 0: check at every request.
    "CLIENT_CACHE_CHECK_INTERVAL": 0.5,
    "OAUTH2_ALLOW_HTTP_REDIRECT_URIS": False,  # plain http only for loopback hosts
    "OAUTH2_PKCE_ALLOW_PLAIN": False,
    "OAUTH2_ROTATE_CONFIDENTIAL_REFRESH_TOKENS": True,
    # Anyone may register clients at /oauth/register; off: an initial access token is needed.
    "OAUTH2_OPEN_REGISTRATION": False,
    # private_key_jwt (RFC 7523): the furthest ahead a client assertion may expire, in seconds
    # (its jti is kept that long); Authlib's and most clients' assertions live 60-3600 s.
    "OAUTH2_CLIENT_ASSERTION_MAX_LIFETIME": 3600,
    # Seconds to wait for a client's jwks_uri, and to keep what it returned.
    "OAUTH2_CLIENT_JWKS_TIMEOUT": 5,
    "OAUTH2_CLIENT_JWKS_CACHE": 300,
    # OpenID Connect Back-Channel and Front-Channel Logout: clients told when a session ends.
    "BACKCHANNEL_LOGOUT": True,
    "FRONTCHANNEL_LOGOUT": True,
    # Seconds the signed-out page lets front-channel logout frames load before going on to the app.
    "FRONTCHANNEL_LOGOUT_DELAY": 2,
    # Logout tokens are POSTed from a queue in the database: seconds to wait for a client,
    # tries before giving up, the first retry's delay (doubling each time), and a token's life.
    "LOGOUT_DELIVERY_TIMEOUT": 5,
    "LOGOUT_DELIVERY_MAX_ATTEMPTS": 5,
    "LOGOUT_DELIVERY_BACKOFF": 10,
    "LOGOUT_TOKEN_LIFETIME": 120,
    # A background thread in every instance sends them (checking every POLL_INTERVAL seconds);
    # off, run `flask deliver-logouts` from cron instead.
    "LOGOUT_DELIVERY_WORKER": True,
    "LOGOUT_DELIVERY_POLL_INTERVAL": 1,
    # The device authorization grant (RFC 8628): on, off. Device and user codes live
    # OAUTH2_DEVICE_CODE_LIFETIME seconds; a device polls at most every OAUTH2_DEVICE_INTERVAL.
    "OAUTH2_DEVICE_FLOW": True,
    "OAUTH2_DEVICE_CODE_LIFETIME": 600,
    "OAUTH2_DEVICE_INTERVAL": 5,
    # Wrong user codes typed at /device, per person and per address, before a lockout
    # (THROTTLE_WINDOW, THROTTLE_LOCKOUT).
    "THROTTLE_USER_CODE_LIMIT": 10,
    # Passwordless passkey sign-ins started (each stores a challenge) per address within
    # THROTTLE_WINDOW, before a pause of THROTTLE_LOCKOUT (0: no limit).
    "PASSKEY_SIGN_IN_ADDRESS_LIMIT": 100,
    # Pushed authorization requests (RFC 9126): on, off; how long a request_uri lives before
    # the browser brings it; whether every client must push its requests.
    "OAUTH2_PAR": True,
    "OAUTH2_PAR_LIFETIME": 90,
    "OAUTH2_REQUIRE_PAR": False,
    # Request objects (RFC 9101, OpenID Connect Core §6): the request parameter, by value and
    # pushed, signed with the client's registered keys.
    "OAUTH2_REQUEST_OBJECTS": True,
    # DPoP (RFC 9449): clients may bind tokens to a key they prove with each request. Off: no
    # DPoP in discovery, and a DPoP proof is refused.
    "OAUTH2_DPOP": True,
    # Seconds a DPoP proof stays acceptable after its iat (its jti is kept that long), and how
    # far ahead of this server's clock its iat may be.
    "OAUTH2_DPOP_PROOF_MAX_AGE": 300,
    "OAUTH2_DPOP_CLOCK_SKEW": 60,
    # Require a server-provided nonce in every DPoP proof (RFC 9449 §8/§9: use_dpop_nonce);
    # nonces are valid for this many seconds, on every instance sharing SECRET_KEY.
    "OAUTH2_DPOP_NONCE": False,
    "OAUTH2_DPOP_NONCE_LIFETIME": 300,
    # Token exchange (RFC 8693): clients registered for the grant swap a token this server
    # issued for a token to another API. Off: the grant is not offered.
    "OAUTH2_TOKEN_EXCHANGE": True,
    # scrypt N=2^15, r=8, p=3: one of the OWASP Password Storage Cheat Sheet's configurations as
    # strong as its minimum (N=2^17, r=8, p=1), with a quarter of the memory per hash (32 MiB);
    # werkzeug's plain "scrypt" is p=1, a third of that work. Older hashes keep verifying.
    "PASSWORD_HASH_METHOD": "scrypt:32768:8:3",
    # RFC 9068 JWT access tokens: RS256 (what APIs written for Auth0 verify) or ES256 (a P-256
    # key beside the RSA one, both in the JWKS; about a fifth of RS256's signing cost).
    "ACCESS_TOKEN_SIGNING_ALG": "RS256",
    "SQLITE_BUSY_TIMEOUT": 30,
    # Production serving (website/http/ops.py). How many reverse proxies set X-Forwarded-* in
    # front of the app; 0 trusts none of those headers.
    "PROXY_COUNT": 0,
    # None: secure cookies exactly when OAUTH2_ISSUER is https.
    "SESSION_COOKIE_SECURE": None,
    # The provider's own cookie name, so apps served on the same host keep their "session".
    "SESSION_COOKIE_NAME": "idp_session",
    # A session ends this many seconds after its browser was last seen (Flask's setting; 31 days).
    "PERMANENT_SESSION_LIFETIME": 31 * 24 * 3600,
    # Seconds between updates of a session's "last seen" time (one write per browser at most).
    "SESSION_TOUCH_INTERVAL": 60,
    # Seconds to wait for a PostgreSQL connection before answering 503.
    "DATABASE_CONNECT_TIMEOUT": 5,
    # Database connections each process keeps, at most: 0 is SQLAlchemy's pool (5, and 10 more
    # while busy); N is exactly N, shared by the process's threads (the bearer checks' own
    # connections aside: website/store/driver.py). With sync workers one is all a worker uses.
    "DATABASE_POOL_SIZE": 0,
    # Security (see SECURITY.md). Request bodies above this many bytes are refused.
    "MAX_CONTENT_LENGTH": 64 * 1024,
    # The longest single parameter value a protocol endpoint accepts.
    "OAUTH2_MAX_PARAMETER_LENGTH": 8192,
    # Failed log-ins (or client authentications) allowed per account from one address / per
    # address / per client_id within THROTTLE_WINDOW seconds, before a lockout of THROTTLE_LOCKOUT
    # seconds, doubled at each further lockout within a day up to THROTTLE_MAX_LOCKOUT.
    "THROTTLE_ACCOUNT_LIMIT": 5,
    "THROTTLE_ADDRESS_LIMIT": 20,
    "THROTTLE_CLIENT_LIMIT": 20,
    "THROTTLE_WINDOW": 15 * 60,
    "THROTTLE_LOCKOUT": 15 * 60,
    "THROTTLE_MAX_LOCKOUT": 24 * 3600,
    # Failed log-ins of one account from every address within THROTTLE_WINDOW before addresses
    # the person has not signed in from within THROTTLE_KNOWN_ADDRESS_DAYS are locked out of it
    # (their own addresses never are); 0: no such limit.
    "THROTTLE_ACCOUNT_TOTAL_LIMIT": 50,
    "THROTTLE_KNOWN_ADDRESS_DAYS": 30,
    # After this many failed log-ins of an account (from anywhere, within THROTTLE_WINDOW) the
    # person gets one mail, at most one per THROTTLE_NOTIFY_INTERVAL seconds; 0: no mail.
    "THROTTLE_NOTIFY_AFTER": 10,
    "THROTTLE_NOTIFY_INTERVAL": 24 * 3600,
    # With a Redis URL the throttle counters live in Redis; otherwise in the database.
    "REDIS_URL": None,
    "THROTTLE_REDIS_PREFIX": "idp:throttle:",
    # Seconds between tries to reach Redis again while the database counters stand in for it.
    "THROTTLE_REDIS_RETRY": 10,
    # Fernet keys that encrypt the private signing keys in the database, comma-separated: the
    # first encrypts, every one decrypts (for rotation). None: a key generated in the instance folder.
    "KEY_ENCRYPTION_KEYS": None,
    # /metrics (Prometheus) answers these addresses or networks (space- or comma-separated),
    # and any request with "Authorization: Bearer METRICS_TOKEN".
    "METRICS_ALLOWED_ADDRESSES": "127.0.0.1 ::1",
    "METRICS_TOKEN": None,
    # Log lines as plain text, or one JSON object per line ("json").
    "LOG_FORMAT": "text",
    # Who may create an account (website/services/signup.py): open, invite, domain or closed.
    "SIGNUP_POLICY": "open",
    # For SIGNUP_POLICY=domain: the mail domains (space- or comma-separated) that may sign up.
    "SIGNUP_ALLOWED_DOMAINS": "",
    # Who must sign in with a second factor (website/services/mfa.py): none, admins or everyone.
    # Apps can also require one (the client's "Require MFA"), and anyone may turn one on.
    "MFA_REQUIRED_FOR": "none",
    # Days a person the policy newly applies to may still sign in with a password alone, from
    # their first sign-in under it; 0: they set up a second factor at that sign-in.
    "MFA_ENROLMENT_GRACE_DAYS": 7,
    # Wrong second-factor codes (TOTP or recovery) per account within THROTTLE_WINDOW seconds
    # before a lockout of THROTTLE_LOCKOUT seconds.
    "MFA_ATTEMPT_LIMIT": 5,
    # Who may register clients on the web pages (/clients): everyone, verified (people whose
    # address is verified) or admins.
    "CLIENT_REGISTRATION_POLICY": "everyone",
    # Every app gets a code only for people whose address is verified (a client can also ask
    # for this on its own: require_verified_email in its settings).
    "REQUIRE_VERIFIED_EMAIL": False,
    # Seconds the links mailed to people work: confirming an address (also a new one),
    # resetting a password, accepting an invitation.
    "EMAIL_VERIFICATION_LIFETIME": 24 * 3600,
    "PASSWORD_RESET_LIFETIME": 30 * 60,
    "INVITATION_LIFETIME": 7 * 24 * 3600,
    # Mails with a link (password reset, confirmation sent again) allowed per account (or
    # username or address asked for), and per client address, within THROTTLE_WINDOW seconds,
    # before a pause of THROTTLE_LOCKOUT seconds (0: no limit).
    "MAIL_LINK_LIMIT": 3,
    "MAIL_LINK_ADDRESS_LIMIT": 10,
    # The forgot-password page answers no sooner than this many seconds, known address or not,
    # so its timing does not tell whether an account exists.
    "PASSWORD_RESET_MIN_SECONDS": 1.0,
    # Refuse new passwords found in a breached-password list, through the k-anonymity range API
    # of Have I Been Pwned (only the first 5 hex digits of the password's SHA-1 leave the server).
    "PWNED_PASSWORDS_CHECK": False,
    "PWNED_PASSWORDS_URL": "https://api.pwnedpasswords.com",
    "PWNED_PASSWORDS_TIMEOUT": 3.0,
    # Branding (website/services/branding.py), also set in the admin UI: the name people see
    # on every page and mail, an https logo URL (None: the built-in mark), the primary colour
    # (links and buttons; at least 4.5:1 against white), and a support address for the footer.
    "SITE_NAME": "Identity Provider",
    "SITE_LOGO_URL": None,
    "SITE_PRIMARY_COLOR": "#4338ca",
    "SITE_SUPPORT_EMAIL": None,
    # A folder of templates that replace the built-in ones of the same name (None: the
    # instance folder's templates/), so a deployer can change any page without forking.
    "TEMPLATE_OVERRIDES_DIR": None,
    # Outgoing mail (website/services/mail.py). With no MAIL_SERVER, mails are written to the
    # log instead of sent, so a fresh install works with zero configuration.
    "MAIL_SERVER": None,
    "MAIL_PORT": 25,
    "MAIL_USE_TLS": False,  # STARTTLS after connecting
    "MAIL_USE_SSL": False,  # TLS from the first byte (usually port 465)
    "MAIL_USERNAME": None,
    "MAIL_PASSWORD": None,
    "MAIL_DEFAULT_SENDER": None,  # default: no-reply@ the issuer's (or the request's) host name
    # Passkeys (WebAuthn, website/services/passkeys.py). The relying-party id: default the host
    # of OAUTH2_ISSUER (or of the request). It must be that host or a parent domain of it, and
    # never an IP address: serve the site on a name (http://localhost works for trying it out).
    "WEBAUTHN_RP_ID": None,
    # The origins passkey answers may come from (space- or comma-separated, such as
    # https://login.example.com); default: the origin of OAUTH2_ISSUER (or of the request).
    "WEBAUTHN_ORIGINS": None,
    # Seconds a passkey challenge may be answered in (each is also good for one answer only).
    "WEBAUTHN_CHALLENGE_LIFETIME": 300,
    # With REDIS_URL, passkey challenges live in Redis under this prefix (else in the database).
    "WEBAUTHN_REDIS_PREFIX": "idp:webauthn:",
    # Seconds to wait for the mail server before telling the person the mail could not be sent.
    "MAIL_TIMEOUT": 10,
    # A forgot-password mail the mail server refuses waits in the mail_queue table (the page
    # may not say it failed: that would tell anyone the address has an account). A thread in
    # every instance sends it (checking every POLL_INTERVAL seconds; off: run `flask
    # send-queued-mail` from cron), retrying after BACKOFF seconds, doubling, for MAX_ATTEMPTS tries.
    "MAIL_QUEUE_WORKER": True,
    "MAIL_QUEUE_POLL_INTERVAL": 5,
    "MAIL_QUEUE_BACKOFF": 60,
    "MAIL_QUEUE_MAX_ATTEMPTS": 8,
    # Seconds to wait for an upstream provider (discovery, token, JWKS, userinfo) during a
    # sign-in through it before telling the person it did not answer.
    "UPSTREAM_TIMEOUT": 10,
    # Seconds each process keeps an upstream's discovery document and JWKS before reading them
    # again (0: read them at every sign-in). An id_token signed by a key the cached JWKS does
    # not have makes it read the JWKS again once.
    "UPSTREAM_METADATA_CACHE": 300,
}


_BOOLEAN_KEYS = {k for k, v in DEFAULTS.items() if isinstance(v, bool)} | {"SESSION_COOKIE_SECURE"}


_INTEGER_KEYS = {k for k, v in DEFAULTS.items() if isinstance(v, int) and k not in _BOOLEAN_KEYS}


_NUMBER_KEYS = {k for k, v in DEFAULTS.items() if isinstance(v, float)}


def parse_bool(value) -> bool:
    """Read a boolean from an environment string such as ``1``, ``true`` or ``off``."""
    if isinstance(value, bool):
        return value
    return str(value).strip().lower() in {"1", "true", "yes", "on"}


def from_environment(environ=os.environ, problems: list | None = None) -> dict:
    """Return the configuration keys that are set in the environment, typed. A value that
    cannot be read is a SystemExit, or a line added to ``problems`` when given."""
    config = {}
    for key in list(DEFAULTS) + ["SECRET_KEY"]:
        if key not in environ:
            continue
        value = environ[key]
        if key in _BOOLEAN_KEYS:
            value = parse_bool(value)
        elif key in _INTEGER_KEYS:
            try:
                value = int(value)
            except ValueError:
                message = f"Configuration error: {key} must be a whole number, not {value!r}"
                if problems is None:
                    raise SystemExit(message)
                problems.append(message)
                continue
        elif key in _NUMBER_KEYS:
            try:
                value = float(value)
            except ValueError:
                message = f"Configuration error: {key} must be a number of seconds, not {value!r}"
                if problems is None:
                    raise SystemExit(message)
                problems.append(message)
                continue
        config[key] = value
    return config


def secret_key_path(instance_path: str) -> Path:
    """Where ``flask initdb`` keeps the generated secret key."""
    return Path(instance_path) / "secret_key"


def read_or_create_secret_key(instance_path: str) -> str:
    """Read the instance folder's secret key, generating it on first use."""
    return _read_or_create(secret_key_path(instance_path), lambda: secrets.token_urlsafe(48))


def key_encryption_key_path(instance_path: str) -> Path:
    """Where the generated key-encryption key is kept when KEY_ENCRYPTION_KEYS is unset."""
    return Path(instance_path) / "key_encryption_key"


def read_or_create_key_encryption_key(instance_path: str) -> str:
    """Read the instance folder's Fernet key-encryption key, generating it on first use."""
    return _read_or_create(key_encryption_key_path(instance_path), lambda: Fernet.generate_key().decode())


def key_encryption(keys) -> tuple[str, MultiFernet]:
    """Parse KEY_ENCRYPTION_KEYS (a comma-separated string or a list of Fernet keys): the
    normalized comma-separated value and the MultiFernet that encrypts with the first key and
    decrypts with any."""
    if isinstance(keys, str):
        keys = keys.split(",")
    keys = [str(key).strip() for key in keys if str(key).strip()]
    if not keys:
        raise SystemExit("Configuration error: KEY_ENCRYPTION_KEYS names no key"
                         " (make one with: flask generate-key-encryption-key)")
    fernets = []
    for number, key in enumerate(keys, 1):
        try:
            fernets.append(Fernet(key))
        except ValueError:  # also binascii.Error: not 32 url-safe base64-encoded bytes
            raise SystemExit(f"Configuration error: key {number} of KEY_ENCRYPTION_KEYS is not a Fernet key"
                             " (make one with: flask generate-key-encryption-key)")
    return ",".join(keys), MultiFernet(fernets)


def _read_or_create(path: Path, make) -> str:
    """Read a generated secret from the instance folder, writing ``make()`` there first if absent
    (readable by its owner only)."""
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        # Write a private temporary file, then link it into place: the link either wins
        # or finds another worker's key, so every process agrees on one complete key.
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
        try:
            with os.fdopen(fd, "w") as f:
                f.write(make() + "\n")
            try:
                os.link(tmp, path)
            except FileExistsError:
                pass
        finally:
            os.unlink(tmp)
    return path.read_text().strip()


def database_uri(url: str | None, instance_path: str) -> str:
    """Turn ``DATABASE_URL`` into an SQLAlchemy URI, defaulting to SQLite in the instance folder."""
    if not url:
        return "sqlite:///" + str(Path(instance_path) / "website.sqlite")
    # Heroku-style and plain postgres URLs name no driver: use psycopg 3.
    for prefix in ("postgres://", "postgresql://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix):]
    return url


def _check_settings(config) -> list[str]:
    """The problems of settings that have a fixed set of values or a format, one line each;
    also parses METRICS_ALLOWED_ADDRESSES into METRICS_NETWORKS."""
    problems = []

    def choice(key, allowed):
        value = str(config[key]).strip().lower()
        if value not in allowed:
            problems.append(f"Configuration error: {key} must be {', '.join(allowed[:-1])} or {allowed[-1]},"
                            f" not {config[key]!r}")
        return value

    config["SIGNUP_POLICY"] = choice("SIGNUP_POLICY", ("open", "invite", "domain", "closed"))
    config["CLIENT_REGISTRATION_POLICY"] = choice("CLIENT_REGISTRATION_POLICY", ("everyone", "verified", "admins"))
    config["LOG_FORMAT"] = choice("LOG_FORMAT", ("text", "json"))
    config["ACCESS_TOKEN_SIGNING_ALG"] = choice("ACCESS_TOKEN_SIGNING_ALG", ("rs256", "es256")).upper()
    config["MFA_REQUIRED_FOR"] = choice("MFA_REQUIRED_FOR", ("none", "admins", "everyone"))
    if config["DATABASE_POOL_SIZE"] < 0:
        problems.append("Configuration error: DATABASE_POOL_SIZE must be 0 (SQLAlchemy's pool) or more")
    if not config["CLIENT_CACHE_CHECK_INTERVAL"] >= 0:  # NaN too
        problems.append("Configuration error: CLIENT_CACHE_CHECK_INTERVAL must be 0 seconds or more")
    if config["MFA_ENROLMENT_GRACE_DAYS"] < 0:
        problems.append("Configuration error: MFA_ENROLMENT_GRACE_DAYS must be 0 or more")
    if config["MAIL_USE_TLS"] and config["MAIL_USE_SSL"]:
        problems.append("Configuration error: set MAIL_USE_TLS (STARTTLS) or MAIL_USE_SSL (TLS from the"
                        " start, usually port 465), not both")
    issuer = config.get("OAUTH2_ISSUER")
    if issuer:
        parts = urlsplit(str(issuer))
        if parts.scheme not in ("http", "https") or not parts.hostname or parts.query or parts.fragment:
            problems.append(f"Configuration error: OAUTH2_ISSUER must be an http(s) URL with a host and no"
                            f" query or fragment, such as https://id.example.com, not {issuer!r}")
    problems.extend(_webauthn_problems(config))
    networks = config["METRICS_ALLOWED_ADDRESSES"] or ""
    if isinstance(networks, str):
        networks = networks.replace(",", " ").split()
    config["METRICS_NETWORKS"] = []
    for item in networks:
        try:
            config["METRICS_NETWORKS"].append(ipaddress.ip_network(item, strict=False))
        except ValueError:
            problems.append(f"Configuration error: METRICS_ALLOWED_ADDRESSES: {item!r} is not an address"
                            " or network")
    return problems


def _webauthn_problems(config) -> list[str]:
    """Passkey settings WebAuthn would refuse in the browser, found at start instead."""
    problems = []
    if config["WEBAUTHN_CHALLENGE_LIFETIME"] < 30:
        problems.append("Configuration error: WEBAUTHN_CHALLENGE_LIFETIME must be 30 seconds or more")
    rp_id = (config.get("WEBAUTHN_RP_ID") or "").strip().lower()
    if rp_id:
        try:
            ipaddress.ip_address(rp_id.strip("[]"))
            problems.append(f"Configuration error: WEBAUTHN_RP_ID must be a host name, not the address {rp_id!r}"
                            " (WebAuthn refuses IP addresses)")
        except ValueError:
            host = (urlsplit(str(config.get("OAUTH2_ISSUER") or "")).hostname or "").lower()
            if host and host != rp_id and not host.endswith("." + rp_id):
                problems.append(f"Configuration error: WEBAUTHN_RP_ID {rp_id!r} must be the host of OAUTH2_ISSUER"
                                f" ({host}) or a parent domain of it")
    origins = config.get("WEBAUTHN_ORIGINS") or ""
    for origin in (origins.replace(",", " ").split() if isinstance(origins, str) else origins):
        parts = urlsplit(origin)
        if parts.scheme not in ("http", "https") or not parts.hostname or parts.path.strip("/") or parts.query:
            problems.append(f"Configuration error: WEBAUTHN_ORIGINS: {origin!r} is not an origin such as"
                            " https://login.example.com")
    return problems


def load(app, test_config: dict | None = None) -> None:
    """Fill ``app.config``: defaults, then instance/config.py, the environment, then
    ``test_config``; derive the secret key, the database URI and the engine options."""
    app.config.from_mapping(DEFAULTS)
    app.config.from_pyfile("config.py", silent=True)
    problems = []  # every problem is reported at once, one line each
    app.config.update(from_environment(problems=problems))
    if test_config:
        app.config.update(test_config)
    # Secrets made in the instance folder because none was configured (`flask check-config` warns).
    generated = app.extensions["generated_secrets"] = {}
    if not app.config.get("SECRET_KEY"):
        app.config["SECRET_KEY"] = read_or_create_secret_key(app.instance_path)
        generated["SECRET_KEY"] = secret_key_path(app.instance_path)
    generated_key_encryption_key = not app.config.get("KEY_ENCRYPTION_KEYS")
    if generated_key_encryption_key:
        app.config["KEY_ENCRYPTION_KEYS"] = read_or_create_key_encryption_key(app.instance_path)
        generated["KEY_ENCRYPTION_KEYS"] = key_encryption_key_path(app.instance_path)
    try:
        app.config["KEY_ENCRYPTION_KEYS"], app.extensions["key_encryption"] = key_encryption(
            app.config["KEY_ENCRYPTION_KEYS"])
    except SystemExit as error:
        problems.append(str(error))
    if generated_key_encryption_key:
        app.logger.warning(
            "Signing keys are encrypted with a key generated in %s: set KEY_ENCRYPTION_KEYS in production.",
            key_encryption_key_path(app.instance_path))
    # Scopes are a space-separated string in the environment, a list everywhere else.
    scopes = app.config["OAUTH2_SCOPES_SUPPORTED"]
    app.config["OAUTH2_SCOPES"] = scopes.split() if isinstance(scopes, str) else list(scopes)
    uri = database_uri(app.config["DATABASE_URL"], app.instance_path)
    app.config["SQLALCHEMY_DATABASE_URI"] = uri
    if uri.startswith("sqlite"):
        Path(app.instance_path).mkdir(parents=True, exist_ok=True)
        # A file has no connection to lose: no ping (a query) on every checkout.
        engine_options = {"connect_args": {"timeout": app.config["SQLITE_BUSY_TIMEOUT"]}}
    else:
        # No pool_pre_ping (a round trip on every checkout): a connection lost with the
        # database fails its query, SQLAlchemy then invalidates the whole pool, the request
        # answers 503 (http/ops.py) and the next one connects afresh.
        engine_options = {}
        if uri.startswith("postgresql"):
            # Fail fast while the database is unreachable: requests answer 503 (http/ops.py).
            engine_options["connect_args"] = {"connect_timeout": app.config["DATABASE_CONNECT_TIMEOUT"]}
    if app.config["DATABASE_POOL_SIZE"] > 0 and ":memory:" not in uri and uri not in ("sqlite://", "sqlite:///"):
        # A request can hold two connections at once: its session's and a short transaction
        # of its own that commits apart (the throttle's counters, a session row, a new signing
        # key). Room for the second one, so a pool of N never waits on itself.
        size = app.config["DATABASE_POOL_SIZE"]
        engine_options.update(pool_size=size, max_overflow=size)
    app.config.setdefault("SQLALCHEMY_ENGINE_OPTIONS", engine_options)
    app.config.setdefault("WTF_CSRF_TIME_LIMIT", None)  # tied to the session instead
    problems.extend(_check_settings(app.config))
    if problems:
        raise SystemExit("\n".join(problems))
    # Real SMTP even under TESTING (Flask-Mailman would pick its in-memory backend): the tests
    # read what arrives at an SMTP server on loopback.
    app.config.setdefault("MAIL_BACKEND", "smtp")
