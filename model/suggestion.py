"""The ticket that comes in and the suggestion that goes out: the contract shared by CLI, API and eval."""
from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator
from pydantic_core import PydanticCustomError

MAX_CONTENT_CHARS = 20_000


def join_texts(parts: list[str]) -> str:
    """Title + details the way training joins them: a 。 between parts unless one is already there."""
    parts = [p.strip() for p in parts if p and p.strip()]
    out = ""
    for p in parts:
        if out and out[-1] not in "。！？!?；;：:，,\n":
            out += "。"
        out += p
    return out


class Ticket(BaseModel):
    model_config = ConfigDict(extra="ignore", str_strip_whitespace=True)

    id: str | None = Field(None, max_length=128, description="工单编号")
    content: str = Field(min_length=1, max_length=MAX_CONTENT_CHARS, description="诉求内容")
    title: str | None = Field(None, max_length=500, description="标题")
    address: str | None = Field(None, max_length=500, description="事发地址")
    caller: str | None = Field(None, max_length=64, description="来电号码（仅用于重复诉求识别，不会保存明文）")
    created_at: str | None = Field(None, max_length=64, description="受理时间 ISO 8601")
    channel: str | None = Field(None, max_length=64, description="来源渠道")
    returns: int = Field(0, ge=0, le=1000, description="已被部门退单的次数（两次及以上需裁定）")

    @field_validator("returns", mode="before")
    @classmethod
    def _count_not_bool(cls, v):
        if isinstance(v, bool):  # true is not "returned once"
            raise PydanticCustomError("int_type", "Input should be a valid integer")
        return v

    @field_validator("id", "created_at", "channel", "title", "address", "caller", mode="before")
    @classmethod
    def _scalar_to_str(cls, v):
        if v is None or isinstance(v, str):
            return v
        if isinstance(v, int) and not isinstance(v, bool):
            return str(v)
        if isinstance(v, float) and v.is_integer():  # 12.0 from a spreadsheet's number cell is ticket 12
            return str(int(v))
        raise PydanticCustomError("string_type", "Input should be a valid string")  # the API says 应为字符串

    @field_validator("id", "created_at", "channel", "title", "address", "caller")
    @classmethod
    def _blank_is_absent(cls, v: str | None) -> str | None:
        return v or None  # "" (or spaces, stripped): not given — a blank id must not become an id

    @field_validator("content")
    @classmethod
    def _no_blank(cls, v: str) -> str:
        if not any(ch.isalnum() for ch in v):
            raise ValueError("content has no words: give the citizen's message (诉求内容不能为空)")
        return v

    @property
    def text(self) -> str:
        """Title and content as one text, joined as training joins them (the classifier reads the same string)."""
        return join_texts([self.title or "", self.content])


Kind = Literal["functional", "enterprise", "locality"]


class DepartmentScore(BaseModel):
    code: str
    name: str
    kind: Kind
    score: float


class Candidate(BaseModel):
    code: str
    kind: Kind
    score: float


#: Every reason code a ticket can carry, with the short label the dispatchers' and arbitrators' screens show (the
#: ``message`` says why for the one ticket): the router's (``model/router.py``, ``model/fusion.py``), the service's
#: (REPEATED_RETURN at the second return, DISPATCHER_REQUEST) and the duplicate index's (REPEAT_COMPLAINT). The API's
#: queue filter and ``serving/static/common.js`` ``REASON_ZH`` take their codes from here (a test holds the two equal).
REASON_LABELS: dict[str, str] = {
    "LOW_CONFIDENCE": "置信度低",
    "AMBIGUOUS": "权责不清",
    "MODEL_LIST_DISAGREE": "模型与清单不一致",
    "DISPUTED_BOUNDARY": "边界争议",
    "NOVEL_MATTER": "新事项",
    "REPEATED_RETURN": "多次退单",
    "REPEAT_COMPLAINT": "反复投诉",
    "DISPATCHER_REQUEST": "派单员提交",
    "LOCALITY_UNRESOLVED": "属地未定",
    "OUTSIDE_ROSTER": "区外单位",
}


class Reason(BaseModel):
    code: str
    message: str

    @field_validator("code")
    @classmethod
    def _known(cls, code: str) -> str:
        if code not in REASON_LABELS:  # a new code is added to REASON_LABELS (and so to the UI's labels) first
            raise ValueError(f"unknown reason code {code!r}; known: {', '.join(REASON_LABELS)}")
        return code


class Evidence(BaseModel):
    department: str
    item_id: str
    item: str
    score: float
    type: Literal["item", "rule", "locality", "precedent"] = "item"
    text: str | None = None


class Suggestion(BaseModel):
    id: str | None
    lead: DepartmentScore
    co: list[DepartmentScore]
    candidates: list[Candidate]
    confidence: float
    auto_dispatch: bool
    needs_arbitration: bool
    reasons: list[Reason]
    evidence: list[Evidence]
    model_version: str
    locality: str | None = None
    #: the lead the responsibility lists alone name (a matched rule's, else the best-scoring department; a town's code
    #: for the locality), before the classifier and precedents have a say: it moves only when the lists are edited,
    #: not at a retrain, so the duplicate detector takes it as the owner of a ticket not yet dispatched
    lists_lead: str | None = Field(None, description="权责清单本身（不含历史派单模型与先例）建议的牵头单位编码")
