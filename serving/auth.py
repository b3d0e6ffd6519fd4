"""API keys: ``Authorization: Bearer <key>`` or ``X-API-Key: <key>``. Keys are stored as sha256 hashes; a revoked
or unknown key gets 401, a valid key with the wrong role 403. ``admin`` may call everything.

Routes declare who may call them with the ``Annotated`` aliases below, e.g. ``user: Dispatcher``.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Security
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer

from serving.errors import ApiError
from serving.deps import StoreDep
from serving.store import KeyInfo

ROLE_ZH = {"dispatcher": "派单员", "arbitrator": "裁定员", "admin": "管理员"}

_bearer = HTTPBearer(auto_error=False, description="API key from `hotline keys create --role R`")
_header = APIKeyHeader(name="X-API-Key", auto_error=False, description="API key (alternative to Bearer)")


@dataclass(frozen=True)
class Principal:
    key: KeyInfo

    @property
    def role(self) -> str:
        return self.key.role

    @property
    def actor(self) -> str:
        return self.key.actor

    @property
    def is_admin(self) -> bool:
        return self.key.role == "admin"


def authenticate(store: StoreDep, bearer: Annotated[HTTPAuthorizationCredentials | None, Security(_bearer)],
                 x_api_key: Annotated[str | None, Security(_header)]) -> Principal:
    token = (bearer.credentials if bearer else None) or x_api_key
    if not token:
        raise ApiError(401, "unauthorized", "missing API key: send 'Authorization: Bearer <key>'",
                       "缺少 API 密钥：请在请求头中提供 Authorization: Bearer <密钥>", {"WWW-Authenticate": "Bearer"})
    info = store.authenticate(token.strip())
    if info is None:
        raise ApiError(401, "unauthorized", "unknown or revoked API key", "API 密钥无效或已吊销",
                       {"WWW-Authenticate": "Bearer"})
    return Principal(info)


def require(*roles: str):
    allowed = set(roles) | {"admin"}

    def check(p: Annotated[Principal, Depends(authenticate)]) -> Principal:
        if p.role not in allowed:
            names = sorted(allowed)
            raise ApiError(403, "forbidden", f"role '{p.role}' may not do this; allowed: {', '.join(names)}",
                           f"角色「{ROLE_ZH.get(p.role, p.role)}」无权执行此操作，允许：{'、'.join(ROLE_ZH[r] for r in names)}")
        return p

    return check


Dispatcher = Annotated[Principal, Depends(require("dispatcher"))]
Arbitrator = Annotated[Principal, Depends(require("arbitrator"))]
Staff = Annotated[Principal, Depends(require("dispatcher", "arbitrator"))]
Admin = Annotated[Principal, Depends(require())]
