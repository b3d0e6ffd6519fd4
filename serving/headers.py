"""Security headers on every answer (pure ASGI middleware).

The widget and the workbench act with the API key the browser keeps, so no other site may frame them (clickjacking of
claim / decide / dispatch): ``frame-ancestors 'none'`` and ``X-Frame-Options: DENY``. Their scripts and styles are files
of this app only (``/static``; the API docs' Swagger UI too, from the ``fastapi-offline`` package, not a CDN), so the
Content-Security-Policy allows ``'self'`` and nothing inline: a script injected into a page would not run. Swagger UI
sets inline styles and draws its icons as ``data:`` images, which its page (``/docs``) allows; no page may reach
another origin.
"""
from __future__ import annotations

CSP = "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
CSP_DOCS = ("default-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; frame-ancestors 'none'; "
            "base-uri 'none'; form-action 'self'")


class SecurityHeaders:
    def __init__(self, app, docs_path: str = "/docs"):
        self.app, self.docs_path = app, docs_path

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        csp = (CSP_DOCS if scope.get("path") == self.docs_path else CSP).encode()

        async def with_headers(msg):
            if msg["type"] == "http.response.start":
                have = {k.lower() for k, _ in msg.get("headers") or []}
                extra = [(b"content-security-policy", csp), (b"x-frame-options", b"DENY"),
                         (b"x-content-type-options", b"nosniff"), (b"referrer-policy", b"no-referrer")]
                msg = {**msg, "headers": [*(msg.get("headers") or []), *((k, v) for k, v in extra if k not in have)]}
            await send(msg)

        await self.app(scope, receive, with_headers)
