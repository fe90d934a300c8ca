"""Error responses: JSON on protocol endpoints (RFC 6749 §5.2 shape), pages for people."""

import secrets

from flask import Flask, current_app, jsonify, render_template, request
from flask_wtf.csrf import CSRFError
from werkzeug.exceptions import (
    HTTPException,
    InternalServerError,
    MethodNotAllowed,
    NotFound,
    RequestEntityTooLarge,
)

from website.http.endpoints import wants_json


class ProtocolInputError(Exception):
    """A malformed protocol request: ``error`` is the OAuth error code."""

    def __init__(self, description: str, error: str = "invalid_request", status_code: int = 400):
        super().__init__(description)
        self.description = description
        self.error = error
        self.status_code = status_code

    def get_error_description(self) -> str:
        """The description, as OAuth2Error names it (the error page shows it)."""
        return self.description


def json_error(error: str, description: str, status_code: int, headers=None):
    """An RFC 6749 §5.2 error response that no cache keeps."""
    response = jsonify(error=error, error_description=description)
    response.status_code = status_code
    response.headers["Cache-Control"] = "no-store"
    response.headers["Pragma"] = "no-cache"
    for name, value in (headers or {}).items():
        response.headers[name] = value
    return response


def http_error_response(error: HTTPException):
    """Answer an HTTP error as JSON on protocol endpoints and as a page elsewhere."""
    code = error.code or 500
    if error.response is not None or _is_json(error):
        return error  # already a complete response, such as Authlib's RFC 6750 errors
    if wants_json():
        if code >= 500:
            return json_error("server_error", "The server could not complete the request.", code)
        if isinstance(error, RequestEntityTooLarge):
            return json_error("invalid_request", "The request body is too large.", 400)
        name = "invalid_request" if code != 404 else "not_found"
        return json_error(name, error.description or error.name, code)
    if code >= 500:
        message = "Something went wrong on our side. Please try again in a moment."
    else:
        message = error.description or error.name
    return render_template("error.html", title=error.name, message=message), code


def printable(text: str) -> str:
    """Text safe in an error_description (RFC 6749 §5.2 allows %x20-21 / %x23-5B / %x5D-7E)."""
    return "".join(c if 0x20 <= ord(c) <= 0x7E and c not in '"\\' else "?" for c in text)


def _is_json(error: HTTPException) -> bool:
    try:
        headers = dict(error.get_headers())
    except Exception:  # noqa: BLE001 - a broken exception must still get an answer
        return False
    return headers.get("Content-Type", "").startswith("application/json")


def forbidden_description_response(error: ValueError):
    """Authlib refuses to build an error whose description would echo characters RFC 6749 §5.2
    forbids (a quote in a response_type, say): that is the client's malformed request, a 400."""
    if not str(error).startswith("Error description contains forbidden characters"):
        raise error
    problem = ProtocolInputError("The request contains a parameter value with characters that are not allowed.")
    if wants_json():
        return json_error(problem.error, problem.description, 400)
    return render_template("oauth/error.html", error=problem), 400


def prefer_json(app, code: int) -> None:
    """Keep the page for ``code`` but answer JSON on protocol endpoints."""
    exc_class = {404: NotFound, 405: MethodNotAllowed, 500: InternalServerError}[code]
    page_handler = app.error_handler_spec[None][code].get(exc_class)

    def handler(error):
        if page_handler is None or wants_json():
            return http_error_response(error)
        return page_handler(error)

    app.register_error_handler(code, handler)


def register_error_pages(app: Flask) -> None:
    """Show errors that reach a person as pages in the site's layout."""

    @app.errorhandler(CSRFError)
    def csrf_error(error):
        return render_template(
            "error.html", code=400, title="This form has expired",
            message="The page was open too long or your session changed. Go back, reload the page "
                    "and send the form again.",
            detail=error.description,
        ), 400

    @app.errorhandler(403)
    def forbidden(error):
        return render_template(
            "error.html", code=403, title="You cannot open this page",
            message="Your account does not have access to it. If you think it should, ask an "
                    "administrator.",
        ), 403

    @app.errorhandler(404)
    def not_found(error):
        return render_template(
            "error.html", code=404, title="Page not found",
            message="There is nothing at this address. Check the link for typing mistakes, or "
                    "start again from the home page.",
        ), 404

    @app.errorhandler(405)
    def method_not_allowed(error):
        return render_template("error.html", code=405, title="Method not allowed",
                               message="This address does not accept that kind of request."), 405

    @app.errorhandler(InternalServerError)
    def internal_error(error):
        # Flask has already logged the traceback; this line ties it to the reference the
        # person sees, so a report of the page finds the log entry.
        reference = secrets.token_hex(4)
        original = getattr(error, "original_exception", None)
        current_app.logger.error("Internal error %s on %s %s: %r", reference, request.method,
                                 request.path, original or error)
        return render_template(
            "error.html", code=500, title="Something went wrong on our side",
            message="The server could not finish your request. It was not your fault. Try again in "
                    "a moment; if it keeps happening, tell the site's administrator this reference.",
            reference=reference,
        ), 500
