"""Who may create an account (SIGNUP_POLICY): one rule for the sign-up page, invitations and
accounts made on first sign-in through an upstream provider."""

from flask import current_app

#: The sign-up policies, and what each means for people.
POLICIES = {
    "open": "anyone may sign up",
    "invite": "only people an administrator invited may sign up",
    "domain": "only addresses under SIGNUP_ALLOWED_DOMAINS may sign up, verified by mail",
    "closed": "only administrators create accounts",
}


def allowed_domains() -> list[str]:
    """SIGNUP_ALLOWED_DOMAINS as lower-case domain names."""
    value = current_app.config.get("SIGNUP_ALLOWED_DOMAINS") or ""
    if isinstance(value, str):
        value = value.replace(",", " ").split()
    return [domain.strip().lower().lstrip("@") for domain in value if domain.strip()]


def email_domain_allowed(email: str | None) -> bool:
    """Whether the address is under one of SIGNUP_ALLOWED_DOMAINS (exactly, or a subdomain)."""
    if not email or "@" not in email:
        return False
    domain = email.rsplit("@", 1)[1].strip().lower()
    return any(domain == allowed or domain.endswith("." + allowed) for allowed in allowed_domains())


def signup_refusal(email: str | None, invited: bool = False) -> str | None:
    """None when a new account with this address may be created under SIGNUP_POLICY; otherwise
    the sentence to show the person. ``invited``: the person holds a valid invitation."""
    policy = current_app.config["SIGNUP_POLICY"]
    if policy == "open" or invited:
        return None
    if policy == "domain":
        if email_domain_allowed(email):
            return None
        return ("Accounts here are only for addresses under "
                + ", ".join(allowed_domains()) + ". Ask an administrator if you need one.")
    if policy == "invite":
        return "Accounts here are by invitation only. Ask an administrator to invite you."
    return "New accounts are created by an administrator here. Ask one to create yours."
