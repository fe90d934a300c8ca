"""Second factors through the real pages: set up an authenticator (the secret read from the
page, codes computed with pyotp as a phone app would), and answer the second-factor step."""

import re
import time

import pyotp

from support.pages import csrf_token


def totp_code(secret: str, steps_ahead: int = 0) -> str:
    """The code an authenticator app shows for ``secret``, ``steps_ahead`` 30-second steps
    from now (the server accepts one step either side; a step's code is accepted once)."""
    return pyotp.TOTP(secret).at(time.time() + 30 * steps_ahead)


def secret_on_page(page) -> str:
    """The base32 secret the enrolment page shows beside the QR code."""
    text = page if isinstance(page, str) else page.get_data(as_text=True)
    match = re.search(r'<code id="totp-secret">([A-Z2-7]+)</code>', text)
    assert match, text[:500]
    return match.group(1)


def recovery_codes_on_page(page) -> list[str]:
    text = page if isinstance(page, str) else page.get_data(as_text=True)
    return re.findall(r"\b[a-z2-9]{4}-[a-z2-9]{4}-[a-z2-9]{4}\b", text)


def enrol_totp(test_client) -> tuple[str, list[str]]:
    """Set up an authenticator for the signed-in (or pending) person; return its secret and
    the recovery codes shown once."""
    page = test_client.get("/account/security/totp")
    assert page.status_code == 200, page.get_data(as_text=True)[:500]
    secret = secret_on_page(page)
    done = test_client.post("/account/security/totp", data={"csrf_token": csrf_token(page),
                                                            "code": totp_code(secret)})
    assert done.status_code == 200, done.get_data(as_text=True)[:2000]
    codes = recovery_codes_on_page(done)
    assert len(codes) == 10
    return secret, codes


def answer_totp(test_client, code: str):
    """Post a code to the second-factor page of the pending sign-in; return the response."""
    page = test_client.get("/login/second-factor")
    return test_client.post("/login/second-factor", data={"csrf_token": csrf_token(page), "code": code})


def answer_recovery_code(test_client, code: str):
    page = test_client.get("/login/recovery-code")
    return test_client.post("/login/recovery-code", data={"csrf_token": csrf_token(page), "code": code})
