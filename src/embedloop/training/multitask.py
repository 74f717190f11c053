"""Several objectives in one cycle (``Settings.multi_task``): one dataset and one loss per source.

Clicks, explicit judgments, domain examples and the distillation term are trained together by
sentence-transformers' trainer, which takes a dict of datasets and a dict of losses with the same
keys and draws each batch from one dataset (``multi_dataset_batch_sampler="proportional"``, its
default: datasets are visited in proportion to their size). Keeping sources apart means a noisy
click is never the in-batch negative of a judged pair, domain pairs without a negative are kept
(the batch supplies negatives), and every objective is documented in its own loss file
(``training/losses/clicks.py``, ``judgments.py``, ``domain.py``, ``distill.py``).

Judged examples are ``TrainingExample(source="judgment")``: ``positive`` the item judged relevant,
``negatives`` the items judged not relevant for the same query (``judged_examples`` builds them).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from torch import nn

from embedloop.settings import LossName, Settings
from embedloop.training.examples import TrainingExample, normalise_query

#: Dataset names, in the order they are built.
CLICKS, JUDGMENTS, JUDGMENT_PAIRS, DOMAIN, DOMAIN_NEGATIVES, DISTILL = (
    "clicks",
    "judgments",
    "judgment_pairs",
    "domain",
    "domain_negatives",
    "distill",
)


def judged_examples(judgments: Iterable[tuple[str, str, bool]]) -> list[TrainingExample]:
    """``(query, item_id, relevant)`` judgments → one example per (query, relevant item).

    The items judged not relevant for the same (normalised) query become its negatives.
    """
    relevant: dict[str, dict[str, str]] = defaultdict(dict)
    irrelevant: dict[str, list[str]] = defaultdict(list)
    for query, item, is_relevant in judgments:
        key = normalise_query(query)
        if is_relevant:
            relevant[key].setdefault(item, query)
        elif item not in irrelevant[key]:
            irrelevant[key].append(item)
    return [
        TrainingExample(query, item, [n for n in irrelevant[key] if n != item], source="judgment")
        for key, items in relevant.items()
        for item, query in items.items()
    ]


def _rows(examples: Sequence[TrainingExample], texts: Mapping[str, str], negatives: int) -> dict[str, list[str]]:
    """MNRL columns; an example without enough resolvable negatives is skipped when ``negatives`` > 0."""
    columns: dict[str, list[str]] = {"anchor": [], "positive": []}
    for i in range(negatives):
        columns[f"negative_{i + 1}"] = []
    for ex in examples:
        pos = ex.positive_text if ex.positive_text is not None else texts.get(ex.positive)
        negs = (
            list(ex.negative_texts) if ex.positive_text is not None else [texts[n] for n in ex.negatives if n in texts]
        )
        if pos is None or (negatives and not negs):
            continue
        columns["anchor"].append(ex.query)
        columns["positive"].append(pos)
        for i in range(negatives):
            columns[f"negative_{i + 1}"].append(negs[i % len(negs)])
    return columns


def multitask_columns(
    examples: Sequence[TrainingExample],
    texts: Mapping[str, str],
    settings: Settings,
    judgments: Sequence[TrainingExample] = (),
) -> dict[str, dict[str, list[str]]]:
    """Dataset columns per objective (empty datasets left out). Distillation is added by the fine-tuner."""
    from embedloop.training.finetuner import feedback_rows

    n = settings.hard_negatives
    clicks = [ex for ex in examples if ex.source not in ("domain", "judgment")]
    judged = [ex for ex in examples if ex.source == "judgment"] + list(judgments)
    domain = [ex for ex in examples if ex.source == "domain"]
    out = {
        CLICKS: feedback_rows(clicks, texts, settings.loss, n),
        JUDGMENTS: _rows([ex for ex in judged if ex.negatives], texts, max(1, n)),
        JUDGMENT_PAIRS: _rows([ex for ex in judged if not ex.negatives], texts, 0),
        DOMAIN: _rows(domain, texts, 0),
        DOMAIN_NEGATIVES: _rows([ex for ex in domain if ex.negative_texts], texts, 1),
    }
    return {name: cols for name, cols in out.items() if cols["anchor"]}


def multitask_losses(names: Iterable[str], model: Any, settings: Settings) -> dict[str, nn.Module]:
    """One loss per dataset name (see ``training/losses``)."""
    from embedloop.training.losses import (
        build_clicks_loss,
        build_domain_loss,
        build_judgments_loss,
        build_loss,
    )

    out: dict[str, nn.Module] = {}
    for name in names:
        if name == CLICKS:
            out[name] = build_clicks_loss(model) if settings.loss is LossName.MNRL else build_loss(settings.loss, model)
        elif name in (JUDGMENTS, JUDGMENT_PAIRS):
            out[name] = build_judgments_loss(model)
        elif name in (DOMAIN, DOMAIN_NEGATIVES):
            out[name] = build_domain_loss(model)
        else:
            raise ValueError(f"no loss for dataset {name!r}")
    return out
