"""A virtual WebAuthn authenticator in headless Chromium, through the Chrome DevTools
Protocol's WebAuthn domain (``WebAuthn.enable``, ``WebAuthn.addVirtualAuthenticator``): a
platform authenticator with resident keys and user verification that answers at once, as a
laptop's fingerprint reader would after a touch."""


class VirtualAuthenticator:
    """One virtual authenticator attached to a Playwright page's browser context."""

    def __init__(self, page, user_verified: bool = True, transport: str = "internal"):
        """``transport="usb"`` makes a security key instead (Chromium allows one internal
        authenticator per tab)."""
        self.cdp = page.context.new_cdp_session(page)
        self.cdp.send("WebAuthn.enable", {"enableUI": False})
        self.id = self.cdp.send("WebAuthn.addVirtualAuthenticator", {"options": {
            "protocol": "ctap2", "ctap2Version": "ctap2_1", "transport": transport,
            "hasResidentKey": True, "hasUserVerification": True, "isUserVerified": user_verified,
            "automaticPresenceSimulation": True,
        }})["authenticatorId"]

    def credentials(self) -> list[dict]:
        """The credentials the authenticator holds (``credentialId``, ``rpId``, ``signCount``...)."""
        return self.cdp.send("WebAuthn.getCredentials", {"authenticatorId": self.id})["credentials"]

    def set_user_verified(self, verified: bool) -> None:
        """Whether the next ceremonies pass user verification (the PIN or fingerprint)."""
        self.cdp.send("WebAuthn.setUserVerified", {"authenticatorId": self.id, "isUserVerified": verified})
