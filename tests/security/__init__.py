"""Security: Pod Security admission, least-privilege RBAC, SCRAM login, no secret leaks."""
