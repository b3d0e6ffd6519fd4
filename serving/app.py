"""FastAPI app: the dispatcher API (/api/v1), the widget (/) and the arbitration workbench (/workbench).

Routes stay thin (serving/routes/): pydantic validates input (field-level 422s in Chinese and English, see
serving/errors.py), an ``Annotated`` dependency checks the caller's API key and role (serving/auth.py), then the
router suggests and the store (serving/store/) records. The store is opened and migrated when the app is
created; the router is built at start-up unless one is passed in.
"""
from __future__ import annotations

import asyncio
import copy
from contextlib import asynccontextmanager
from pathlib import Path

import fastapi_offline
from fastapi import FastAPI
from fastapi.responses import FileResponse
from fastapi.staticfiles import StaticFiles

from hotline.settings import Settings, get_settings
from model.router import ZeroShotRouter
from serving import dedup, errors, logs, precedents
from serving.reload import Reloader
from serving.bootstrap import open_store
from serving.headers import SecurityHeaders
from serving.metrics import Metrics, MetricsMiddleware
from serving.routes import arbitration, duplicates, ops, routing, tickets
from serving.store import Store

STATIC = Path(__file__).parent / "static"
SWAGGER_UI = Path(fastapi_offline.__file__).parent / "static"  # swagger-ui-bundle.js, swagger-ui.css, favicon.png


def create_app(settings: Settings | None = None, router: ZeroShotRouter | None = None,
               store: Store | None = None) -> FastAPI:
    settings = settings or get_settings()
    store = store or open_store(settings)
    if router is not None:  # this app's own view: its precedents are its database's, the heavy parts are shared
        router = copy.copy(router)
        router.precedents = None
    logs.install()

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        if app.state.router is None:
            from model.pipeline import build_router

            app.state.router = await asyncio.to_thread(
                build_router, settings.lists_dir, encoder_source=settings.encoder,
                model_cache_dir=settings.model_cache_dir, index_dir=settings.index_dir,
                max_seq_length=settings.max_seq_length, model_version=settings.model_version,
                versions_root=settings.model_versions_dir,
                config=settings.router_config(), fusion_overrides=settings.fusion_overrides(),
                dtype=settings.encoder_dtype, num_threads=settings.torch_threads,
            )
        # the precedents: every ticket a person settled, from the database
        await asyncio.to_thread(precedents.service(app).sync, True)
        # the duplicate index: saved state if it matches the database, else rebuilt from the stored tickets
        await asyncio.to_thread(dedup.service(app).open)
        app.state.reloader.start()  # a newly promoted version or edited lists are served without a restart
        try:
            yield
        finally:
            await asyncio.to_thread(app.state.reloader.stop)
            if getattr(app.state, "dedup", None) is not None:
                await asyncio.to_thread(app.state.dedup.save)

    app = FastAPI(title="hotline-dispatch 12345 派单助手", version="0.1.0", lifespan=lifespan,
                  docs_url=None, redoc_url=None, openapi_url="/api/v1/openapi.json")  # /docs: below, no CDN
    app.state.settings = settings
    app.state.router = router
    app.state.store = store
    app.state.metrics = Metrics(store)
    app.state.metrics.watch_router(lambda: app.state.router)
    app.state.on_ticket = None  # hook for the duplicate index (issue 6) to see every stored ticket
    app.state.dedup = None      # serving.dedup.DedupService, installed once the router (encoder) exists
    app.state.precedents = None  # serving.precedents.PrecedentService: settled tickets that vote (same)
    app.state.reloader = Reloader(app)  # notes what is promoted and the lists' files now, before the router is built
    if router is not None:
        dedup.install(app)      # opened lazily at the first ticket (or at start-up, in the lifespan)
        precedents.install(app)  # read at the first suggestion (or at start-up)

    errors.install(app)
    for r in (ops.router, routing.router, tickets.router, arbitration.router, duplicates.router):
        app.include_router(r)
    app.add_middleware(errors.BodyLimit, limit=settings.api_max_body_bytes)
    app.add_middleware(MetricsMiddleware, metrics=app.state.metrics)
    app.add_middleware(SecurityHeaders)

    # before /static: Swagger UI's files from the fastapi-offline package (FastAPI's own /docs loads them from a CDN,
    # which a centre's network does not reach and which would run on this origin, beside the stored API keys)
    app.mount("/static/swagger-ui", StaticFiles(directory=SWAGGER_UI), name="swagger-ui")
    app.mount("/static", StaticFiles(directory=STATIC), name="static")

    @app.get("/docs", include_in_schema=False)
    def docs() -> FileResponse:
        return FileResponse(STATIC / "docs.html")

    @app.get("/", include_in_schema=False)
    def widget() -> FileResponse:
        return FileResponse(STATIC / "widget.html")

    @app.get("/workbench", include_in_schema=False)
    def workbench() -> FileResponse:
        return FileResponse(STATIC / "workbench.html")

    return app
