"""User mistakes become 4xx with a field-level message in Chinese and English — never a 500.

Every error body has ``error`` (a code), ``message`` (English), ``message_zh`` (中文) and, for bad input,
``detail``: one entry per field with ``field``, ``msg`` and ``msg_zh``.
"""
from __future__ import annotations

import logging
import re

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from serving.store import StoreError

log = logging.getLogger("hotline.serving")

_ZH = {
    "missing": "缺少必填字段",
    "string_type": "应为字符串",
    "int_type": "应为整数", "int_parsing": "应为整数",
    "bool_type": "应为布尔值", "bool_parsing": "应为布尔值",
    "float_type": "应为数字", "float_parsing": "应为数字", "finite_number": "应为有限数字",
    "list_type": "应为列表",
    "dict_type": "应为 JSON 对象", "model_attributes_type": "应为 JSON 对象", "model_type": "应为 JSON 对象",
    "json_invalid": "JSON 格式错误",
    "extra_forbidden": "不允许的字段",
    "string_pattern_mismatch": "格式不正确",
    "string_nul": "不能包含空字符（\\u0000）",
    "phone_number": "应为电话号码（至少 5 位数字，可含 +、-、空格和括号）",
    "datetime_unreadable": "无法识别的时间，请用 ISO 8601，如 2024-05-01T09:30:00+08:00（或 2024-5-1 09:30、2024年5月1日）",
}

# a number's bound: 0 satisfies 应不小于 0 (ge) but not 应大于 0 (gt)
_BOUNDS = {"greater_than_equal": ("应不小于", "ge"), "greater_than": ("应大于", "gt"),
           "less_than_equal": ("应不大于", "le"), "less_than": ("应小于", "lt")}


def _zh(err: dict) -> str:
    t, ctx = err.get("type", ""), err.get("ctx") or {}
    if t == "string_too_long":
        return f"内容过长（最多 {ctx.get('max_length')} 个字符）"
    if t == "string_too_short":
        return f"内容过短（至少 {ctx.get('min_length')} 个字符）" if ctx.get("min_length", 1) > 1 else "不能为空"
    if t == "too_long":
        return f"数量过多（最多 {ctx.get('max_length')} 项）"
    if t == "too_short":
        return f"数量不足（至少 {ctx.get('min_length')} 项）"
    if t in _BOUNDS:
        words, key = _BOUNDS[t]
        return f"{words} {ctx.get(key)}"
    if t in ("literal_error", "enum"):
        return f"取值无效，可选：{ctx.get('expected', '')}"
    if t in _ZH:
        return _ZH[t]
    msg = str(err.get("msg", ""))
    if re.search(r"[\u4e00-\u9fff]", msg):  # our own validators already speak Chinese
        return re.sub(r"^Value error, ", "", msg)
    return "输入无效：" + msg


def field_errors(errors) -> list[dict]:
    out = []
    for e in errors:
        loc = [str(x) for x in e.get("loc", ()) if x not in ("body", "query", "path", "header")]
        if e.get("type") == "json_invalid":
            loc = []
        out.append({"field": ".".join(loc) or "body", "loc": list(e.get("loc", ())), "type": e.get("type"),
                    "msg": re.sub(r"^Value error, ", "", str(e.get("msg", ""))), "msg_zh": _zh(e)})
    return out


def body(code: str, message: str, message_zh: str, detail: list | None = None) -> dict:
    out = {"error": code, "message": message, "message_zh": message_zh}
    if detail is not None:
        out["detail"] = detail
    return out


class InputError(Exception):
    """A field-level mistake found after pydantic's checks (e.g. an unknown department code) -> 422."""

    def __init__(self, field: str, message: str, message_zh: str):
        super().__init__(message)
        self.field, self.message, self.message_zh = field, message, message_zh


class ApiError(Exception):
    def __init__(self, status: int, code: str, message: str, message_zh: str, headers: dict | None = None):
        super().__init__(message)
        self.status, self.code, self.message, self.message_zh, self.headers = status, code, message, message_zh, headers


_HTTP_ZH = {404: "找不到该地址", 405: "不支持该请求方法", 413: "请求体过大", 415: "不支持的内容类型"}

#: FastAPI's 400 for a body it could not read as JSON at all (not UTF-8, nested past the parser's depth): what to send
_UNREADABLE = ("the body could not be read: send one JSON document encoded as UTF-8",
               "请求体无法解析：请发送 UTF-8 编码的 JSON")


def install(app: FastAPI) -> None:
    @app.exception_handler(RequestValidationError)
    async def _validation(_req: Request, exc: RequestValidationError):
        detail = field_errors(exc.errors())
        first = detail[0] if detail else {"field": "body", "msg": "invalid", "msg_zh": "输入无效"}
        return JSONResponse(status_code=422, content=body(
            "invalid_input", f"{first['field']}: {first['msg']}", f"{first['field']}：{first['msg_zh']}", detail))

    @app.exception_handler(InputError)
    async def _input(_req: Request, exc: InputError):
        d = [{"field": exc.field, "loc": ["body", *exc.field.split(".")], "type": "value_error", "msg": exc.message,
              "msg_zh": exc.message_zh}]
        return JSONResponse(status_code=422, content=body("invalid_input", f"{exc.field}: {exc.message}",
                                                          f"{exc.field}：{exc.message_zh}", d))

    @app.exception_handler(StoreError)
    async def _store(_req: Request, exc: StoreError):
        detail = None
        if exc.loc:  # the value the store refused (an unknown ticket id, a report of another event in ``also``…)
            field = ".".join(x for x in exc.loc if x not in ("body", "query", "path", "header"))
            detail = [{"field": field, "loc": list(exc.loc), "type": exc.code, "msg": exc.message,
                       "msg_zh": exc.message_zh}]
        return JSONResponse(status_code=exc.status, content=body(exc.code, exc.message, exc.message_zh, detail))

    @app.exception_handler(ApiError)
    async def _api(_req: Request, exc: ApiError):
        return JSONResponse(status_code=exc.status, content=body(exc.code, exc.message, exc.message_zh),
                            headers=exc.headers)

    @app.exception_handler(StarletteHTTPException)
    async def _http(_req: Request, exc: StarletteHTTPException):
        msg = exc.detail if isinstance(exc.detail, str) else "error"
        if exc.status_code == 400:  # the body, not a field, is at fault: say what to send, as a field-level 400
            d = [{"field": "body", "loc": ["body"], "type": "body_unreadable", "msg": _UNREADABLE[0],
                  "msg_zh": _UNREADABLE[1]}]
            return JSONResponse(status_code=400, content=body("unreadable_body", *_UNREADABLE, d))
        return JSONResponse(status_code=exc.status_code, headers=getattr(exc, "headers", None),
                            content=body(f"http_{exc.status_code}", msg, _HTTP_ZH.get(exc.status_code, msg)))

    @app.exception_handler(_TooLarge)
    async def _too_large(_req: Request, exc: "_TooLarge"):
        return JSONResponse(status_code=413, content=body(
            "too_large", f"request body over {exc.limit} bytes", f"请求体超过 {exc.limit} 字节上限"))

    @app.exception_handler(Exception)
    async def _unexpected(_req: Request, exc: Exception):  # a bug, not the user's fault: log it, say little
        log.exception("unhandled error")
        return JSONResponse(status_code=500, content=body("internal_error", "internal error; it has been logged",
                                                          "服务内部错误，已记录"))


class BodyLimit:
    """Pure ASGI middleware: 413 for a request body above ``limit`` bytes (declared or streamed)."""

    def __init__(self, app, limit: int):
        self.app, self.limit = app, limit

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.limit:
            return await self._reject(send)
        seen = 0

        async def limited():
            nonlocal seen
            msg = await receive()
            if msg["type"] == "http.request":
                seen += len(msg.get("body", b""))
                if seen > self.limit:
                    raise _TooLarge(self.limit)
            return msg

        started = False

        async def tracking_send(msg):
            nonlocal started
            if msg["type"] == "http.response.start":
                started = True
            await send(msg)

        try:
            await self.app(scope, limited, tracking_send)
        except _TooLarge:
            if not started:
                await self._reject(send)

    async def _reject(self, send):
        resp = JSONResponse(status_code=413, content=body(
            "too_large", f"request body over {self.limit} bytes", f"请求体超过 {self.limit} 字节上限"))
        await resp({"type": "http"}, None, send)


class _TooLarge(StarletteHTTPException):
    """Raised while the body streams in; an HTTPException so that FastAPI's body reader passes it on (any other
    exception there becomes its 400 "error parsing the body") to the handler above."""

    def __init__(self, limit: int):
        super().__init__(413, f"request body over {limit} bytes")
        self.limit = limit
