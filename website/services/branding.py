"""Branding rules: a primary colour that keeps text readable, a logo from an https URL, and the
stylesheet that applies the colour (served as a file, so the strict CSP needs no inline style)."""

import re
from urllib.parse import urlsplit


from website.store.branding import Brand

_HEX = re.compile(r"#[0-9a-fA-F]{6}")

#: WCAG 2 AA for normal text: the primary colour is link text on white and the background of
#: buttons with white text.
MIN_CONTRAST = 4.5


def _luminance(color: str) -> float:
    def channel(value: int) -> float:
        c = value / 255
        return c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4
    r, g, b = (int(color[i:i + 2], 16) for i in (1, 3, 5))
    return 0.2126 * channel(r) + 0.7152 * channel(g) + 0.0722 * channel(b)


def contrast_with_white(color: str) -> float:
    """The WCAG contrast ratio of the colour against white (1 to 21)."""
    return 1.05 / (_luminance(color) + 0.05)


def color_problem(color: str) -> str | None:
    """Why a primary colour is refused, or None."""
    if not _HEX.fullmatch(color or ""):
        return "Give the colour as # and six hex digits, such as #4338ca."
    ratio = contrast_with_white(color)
    if ratio < MIN_CONTRAST:
        return (f"{color} on white has a contrast of {ratio:.1f}:1; links and buttons need at least"
                f" {MIN_CONTRAST}:1 to be readable. Choose a darker colour.")
    return None


def logo_problem(url: str) -> str | None:
    """Why a logo URL is refused, or None (empty means the built-in mark)."""
    if not url:
        return None
    parts = urlsplit(url)
    if len(url) > 2000 or parts.scheme != "https" or not parts.hostname or any(c.isspace() for c in url):
        return "The logo must be an https:// URL of an image (at most 2,000 characters)."
    return None


def _mix(color: str, other: tuple[int, int, int], share: float) -> str:
    rgb = [int(color[i:i + 2], 16) for i in (1, 3, 5)]
    return "#" + "".join(f"{round(c * (1 - share) + o * share):02x}" for c, o in zip(rgb, other))


def branding_css(brand: Brand) -> str:
    """The stylesheet that sets the primary colour and its hover and soft shades."""
    color = brand.primary_color.lower()
    return (":root {\n"
            f"  --primary: {color};\n"
            f"  --primary-hover: {_mix(color, (0, 0, 0), 0.18)};\n"
            f"  --primary-soft: {_mix(color, (255, 255, 255), 0.92)};\n"
            "}\n")


def check_configuration(config) -> None:
    """Refuse to start with a configured colour or logo the admin form would refuse."""
    problems = []
    if problem := color_problem(str(config.get("SITE_PRIMARY_COLOR") or "")):
        problems.append(f"Configuration error: SITE_PRIMARY_COLOR: {problem}")
    if problem := logo_problem(str(config.get("SITE_LOGO_URL") or "")):
        problems.append(f"Configuration error: SITE_LOGO_URL: {problem}")
    if problems:
        raise SystemExit("\n".join(problems))
