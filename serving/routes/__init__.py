"""API routes under /api/v1: thin functions that validate, check the caller's role and call the store/router."""
