"""Accounts and access control: passwords, sessions, API tokens, the first-run setup link, limits.

Kept apart from HTTP: ``service.AuthService`` holds the rules, ``middleware.AuthMiddleware`` applies them
to every request (default deny under /api), and the routers in ``skyframe.api`` stay thin.
"""
