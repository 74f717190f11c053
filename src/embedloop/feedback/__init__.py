"""What the logs say is relevant: the click model, explicit judgments and the review queue that asks for them."""

from embedloop.feedback.judgments import JudgmentHoldout, judgment_examples, judgment_holdout, merge_judgments
from embedloop.feedback.persistence import Judgment
from embedloop.feedback.review import REASON_WEIGHTS, Ranker, state_ranker

__all__ = [
    "REASON_WEIGHTS",
    "Judgment",
    "JudgmentHoldout",
    "Ranker",
    "judgment_examples",
    "judgment_holdout",
    "merge_judgments",
    "state_ranker",
]
