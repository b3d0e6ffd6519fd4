"""Shared FastAPI dependencies: the store, the router and the settings live on ``app.state``."""
from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from hotline.settings import Settings
from model.router import ZeroShotRouter
from serving.errors import ApiError
from serving.store import Store


def get_store(request: Request) -> Store:
    return request.app.state.store


def get_router(request: Request) -> ZeroShotRouter:
    r = request.app.state.router
    if r is None:
        raise ApiError(503, "starting", "the routing model is still loading; try again in a few seconds",
                       "派单模型正在加载，请稍候再试", {"Retry-After": "5"})
    return r


def get_settings_dep(request: Request) -> Settings:
    return request.app.state.settings


StoreDep = Annotated[Store, Depends(get_store)]
RouterDep = Annotated[ZeroShotRouter, Depends(get_router)]
SettingsDep = Annotated[Settings, Depends(get_settings_dep)]
