"""Second factors through the real pages: an authenticator app (pyotp computing codes from
the secret the enrolment page shows, as a phone would), setting one up, and answering the
second-factor step with a code or a recovery code."""

import re
import time

import pyotp

from support.pages import csrf_token


class Authenticator:
    """A phone's authenticator app for one secret. The server accepts a time step's code once,
    and codes one step either side of now, so ``code()`` gives the next step not yet used
    (waiting for the clock only when both nearby steps are spent)."""

    def __init__(self, secret: str):
        self.secret = secret
        self.totp = pyotp.TOTP(secret)
        self.last_step: int | None = None

    def code(self) -> str:
        step = int(time.time()) // 30
        if self.last_step is not None and self.last_step >= step:
            step = self.last_step + 1
            while step > int(time.time()) // 30 + 1:
                time.sleep(0.5)
        self.last_step = step
        return self.totp.generate_otp(step)

    def spent_code(self) -> str:
        """The code last accepted (a replay)."""
        return self.totp.generate_otp(self.last_step)


def page_text(page) -> str:
    if isinstance(page, str):
        return page
    return page.get_data(as_text=True) if hasattr(page, "get_data") else page.text


def secret_on_page(page) -> str:
    """The base32 secret the enrolment page shows beside the QR code."""
    match = re.search(r'<code id="totp-secret">([A-Z2-7]+)</code>', page_text(page))
    assert match, page_text(page)[:500]
    return match.group(1)


def recovery_codes_on_page(page) -> list[str]:
    return re.findall(r"\b[a-z2-9]{4}-[a-z2-9]{4}-[a-z2-9]{4}\b", page_text(page))


def continue_link(page) -> str:
    """Where the recovery-codes page's "continue" button goes."""
    match = re.search(r'<a class="button" href="([^"]+)">I saved my codes', page_text(page))
    assert match, page_text(page)[:500]
    return match.group(1).replace("&amp;", "&")


def enrol_totp(test_client, base: str = "") -> tuple[Authenticator, list[str], object]:
    """Set up an authenticator for the signed-in (or pending) person through the Flask test
    client (or a requests session, with the server's ``base`` URL); return the app, the
    recovery codes shown once and the page showing them."""
    page = test_client.get(f"{base}/account/security/totp")
    assert page.status_code == 200, page_text(page)[:500]
    app = Authenticator(secret_on_page(page))
    done = test_client.post(f"{base}/account/security/totp",
                            data={"csrf_token": csrf_token(page), "code": app.code()})
    assert done.status_code == 200, page_text(done)[:2000]
    codes = recovery_codes_on_page(done)
    assert len(codes) == 10
    return app, codes, done


def answer_totp(test_client, code: str):
    """Post a code to the second-factor page of the pending sign-in; return the response."""
    page = test_client.get("/login/second-factor")
    return test_client.post("/login/second-factor", data={"csrf_token": csrf_token(page), "code": code})


def answer_recovery_code(test_client, code: str):
    page = test_client.get("/login/recovery-code")
    return test_client.post("/login/recovery-code", data={"csrf_token": csrf_token(page), "code": code})
