"""Shared FastAPI dependencies: the store, the router and the settings live on ``app.state``."""
from __future__ import annotations

import logging
from typing import Annotated

from fastapi import Depends, Request

from hotline.settings import Settings
from model.router import ZeroShotRouter
from serving.errors import ApiError
from serving.store import Store

log = logging.getLogger("hotline.precedents")


def get_store(request: Request) -> Store:
    return request.app.state.store


def get_router(request: Request) -> ZeroShotRouter:
    r = request.app.state.router
    if r is None:
        raise ApiError(503, "starting", "the routing model is still loading; try again in a few seconds",
                       "派单模型正在加载，请稍候再试", {"Retry-After": "5"})
    svc = getattr(request.app.state, "precedents", None)
    if svc is not None:
        try:
            svc.sync()  # settled tickets from the database, at most every precedent_sync_seconds
        except Exception:  # noqa: BLE001 - suggest with the precedents already loaded rather than fail
            log.exception("could not read the precedents; suggesting with the ones already loaded")
    return r


def get_settings_dep(request: Request) -> Settings:
    return request.app.state.settings


StoreDep = Annotated[Store, Depends(get_store)]
RouterDep = Annotated[ZeroShotRouter, Depends(get_router)]
SettingsDep = Annotated[Settings, Depends(get_settings_dep)]
