"""The rules of the house, shared by the views, the CLI and the protocol endpoints."""
