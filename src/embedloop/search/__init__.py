"""The serving state: encode a query, search the index, interleave during a trial, explore."""

from embedloop.search.searcher import Searcher, ServingState

__all__ = ["Searcher", "ServingState"]
