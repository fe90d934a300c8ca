"""/api/v2/sessions and /api/v2/users/{id}/sessions: people's browser sessions, read and
ended one at a time (Auth0's session endpoints)."""

from flask import jsonify, request

from website.services.sessions import end_session, live_session_rows
from website.views.admin_api import ApiError, check_if_match, no_content, operation, with_etag
from website.views.admin_api.shapes import find_session, find_user, session_shape
from website.views.admin_api.users import caller

TAKE_DEFAULT, TAKE_MAX = 50, 100


def _take_and_from() -> tuple[int, int]:
    """Auth0's ``take`` (1 to 100) and ``from`` (the ``next`` of the page before: here an
    offset, to be passed back as it came)."""
    take, start = request.args.get("take", str(TAKE_DEFAULT)), request.args.get("from", "0")
    # isascii: str.isdigit() also admits digits such as "¹" that int() refuses.
    if not all(value.isascii() and value.isdigit() and len(value) < 7 for value in (take, start)) \
            or not 1 <= int(take) <= TAKE_MAX:
        raise ApiError(400, f"'take' must be 1 to {TAKE_MAX} and 'from' the 'next' of the page before.",
                       "invalid_query_string")
    return int(take), int(start)


@operation("/users/<user_id>/sessions", "GET", "read:sessions",
           "The person's live browser sessions, the most recently used first; pass ``next`` as"
           " ``from`` for the page after.", response="SessionPage", query=("from", "take"))
def user_sessions(user_id):
    user = find_user(user_id)
    take, start = _take_and_from()
    rows = live_session_rows(user, take + 1, start)  # one more tells whether a next page exists
    return jsonify({"sessions": [session_shape(row, user.sub) for row in rows[:take]],
                    "next": str(start + take) if len(rows) > take else None})


@operation("/sessions/<session_id>", "GET", "read:sessions", "One live session.", response="Session")
def get_session(session_id):
    row, user = find_session(session_id)
    return with_etag(session_shape(row, user.sub))


@operation("/sessions/<session_id>", "DELETE", "delete:sessions",
           "End one session: that browser is signed out now, and its apps with a back-channel"
           " logout URI are told.", status=204)
def delete_session(session_id):
    row, user = find_session(session_id)
    check_if_match(session_shape(row, user.sub))
    if not end_session(row.id, user=user, via="admin_api", by_client=caller()):
        raise ApiError(404, "The session does not exist.", "inexistent_session")
    return no_content()
