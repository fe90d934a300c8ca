"""Helpers the tests import (conftest.py holds only fixtures, and nothing imports from it):

- pages: reading rendered pages (the CSRF token of a form, a redirect's parameters) and the
  ``auth`` fixture's log-in/log-out actions;
- flows: walking the OAuth flows through the test client (PKCE, consent, get a code, get tokens);
- factories: the test config, the test password, and direct database reads and writes;
- oidc: a person's browser against the live server (requests) and the ID-token helpers;
- databases, instances, tcpproxy: a database of one's own, gunicorn processes, a cuttable TCP link.
"""
