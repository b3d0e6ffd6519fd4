"""FastAPI app: the dispatcher API (/api/v1) and the widget (/).

Routes stay thin: they validate input (pydantic gives field-level 422s), call the router, return its
suggestion. The router is built once at start-up from the settings object.
"""
from __future__ import annotations

import asyncio
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Annotated

from fastapi import Depends, FastAPI, Query, Request
from fastapi.responses import FileResponse
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel, Field

from hotline.settings import Settings, get_settings
from model.router import ZeroShotRouter
from model.suggestion import Suggestion, Ticket

STATIC = Path(__file__).parent / "static"
MAX_BATCH = 100


class DepartmentOut(BaseModel):
    code: str
    name: str
    kind: str
    items: int


class SearchHit(BaseModel):
    department: str
    department_name: str
    item_id: str
    item: str
    duties: str
    score: float
    matched_text: str


class BatchIn(BaseModel):
    tickets: list[Ticket] = Field(min_length=1, max_length=MAX_BATCH)


def create_app(settings: Settings | None = None, router: ZeroShotRouter | None = None) -> FastAPI:
    settings = settings or get_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        if app.state.router is None:
            from model.pipeline import build_router

            app.state.router = await asyncio.to_thread(
                build_router, settings.lists_dir, encoder_source=settings.encoder,
                model_cache_dir=settings.model_cache_dir, index_dir=settings.index_dir,
                max_seq_length=settings.max_seq_length, model_version=settings.model_version,
                dtype=settings.encoder_dtype, num_threads=settings.torch_threads,
            )
        yield

    app = FastAPI(title="hotline-dispatch 12345 派单助手", version="0.1.0", lifespan=lifespan,
                  docs_url="/docs", openapi_url="/api/v1/openapi.json")
    app.state.router = router
    app.state.lock = asyncio.Lock()

    def get_router(request: Request) -> ZeroShotRouter:
        return request.app.state.router

    RouterDep = Annotated[ZeroShotRouter, Depends(get_router)]

    @app.get("/healthz", tags=["ops"])
    def healthz(r: RouterDep) -> dict:
        return {"status": "ok", "model_version": r.model_version, "lists_version": r.lists.version,
                "encoder": r.index.encoder.name}

    @app.get("/api/v1/departments", tags=["lists"])
    def departments(r: RouterDep) -> list[DepartmentOut]:
        return [DepartmentOut(code=c, name=d.name, kind=d.kind, items=len(r.lists.items_of(c)))
                for c, d in r.lists.departments.items()]

    @app.post("/api/v1/route", tags=["routing"])
    def route(ticket: Ticket, r: RouterDep) -> Suggestion:
        """Suggest lead and co-handlers for one ticket without storing it."""
        return r.route(ticket)

    @app.post("/api/v1/route/batch", tags=["routing"])
    def route_batch(body: BatchIn, r: RouterDep) -> list[Suggestion]:
        return r.route_many(body.tickets)

    @app.get("/api/v1/responsibilities/search", tags=["lists"])
    def search(r: RouterDep, q: Annotated[str, Query(min_length=1, max_length=2000)],
               k: Annotated[int, Query(ge=1, le=50)] = 10) -> list[SearchHit]:
        names = r.lists.names
        return [SearchHit(department=h.ref.department, department_name=names[h.ref.department], item_id=h.ref.item.id,
                          item=h.ref.item.title, duties=h.ref.item.duties, score=round(h.score, 4),
                          matched_text=h.matched_text) for h in r.index.search(q, k=k)]

    app.mount("/static", StaticFiles(directory=STATIC), name="static")

    @app.get("/", include_in_schema=False)
    def widget() -> FileResponse:
        return FileResponse(STATIC / "widget.html")

    return app
