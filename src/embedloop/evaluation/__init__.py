"""Held-out evaluation: triplet accuracy and ranking metrics, sharing one base."""

from embedloop.evaluation.base import Evaluator
from embedloop.evaluation.retrieval import RetrievalEvaluator, ranking_metrics
from embedloop.evaluation.triplet import TripletAccuracyEvaluator

__all__ = ["Evaluator", "RetrievalEvaluator", "TripletAccuracyEvaluator", "ranking_metrics"]
