"""Duplicate and repeat complaints (重复诉求) and hot issues (热点); see :mod:`.detector`."""
from .detector import DedupConfig, DedupResult, DuplicateDetector, StateDamaged, StateMismatch
from .hot import HotIssue, hot_issues
from .signals import caller_key, parse_time, place_keys
from .vectors import VectorIndex

__all__ = ["DedupConfig", "DedupResult", "DuplicateDetector", "StateDamaged", "StateMismatch", "HotIssue", "hot_issues",
           "caller_key", "parse_time", "place_keys", "VectorIndex"]
