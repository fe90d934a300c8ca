"""Authlib only, no views: the authorization server, its grants, endpoints and
extensions. ``server.py`` is the one composition root."""
