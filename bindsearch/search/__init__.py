"""Search: query terms and their grammar, filters, calibrated scores across modalities, de-duplication."""

from ..filters import Filters, parse_date, parse_size
from .calibration import ScoreScale, score_scale
from .engine import Hit, check_filters, embed_terms, parse_targets, query_vector, resolve_targets, search
from .terms import Like, QueryTerm, parse_expression, parse_term, split_weight

__all__ = [
    "Filters",
    "Hit",
    "Like",
    "QueryTerm",
    "ScoreScale",
    "check_filters",
    "embed_terms",
    "parse_date",
    "parse_expression",
    "parse_size",
    "parse_targets",
    "parse_term",
    "query_vector",
    "resolve_targets",
    "score_scale",
    "search",
    "split_weight",
]
