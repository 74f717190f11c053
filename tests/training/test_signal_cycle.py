"""The training-signal options inside a real cycle and a real fine-tuner (MiniLM, tiny data)."""

from __future__ import annotations

import pytest
import torch
from feedback_sim import CATALOG, simulate

from embedloop import EmbedLoop, Settings
from embedloop.training.cycle import next_training_examples
from embedloop.training.examples import TrainingExample, normalise_query
from embedloop.training.finetuner import EmbeddingFineTuner
from embedloop.training.multitask import judged_examples
from embedloop.training.split import split_by_query

pytestmark = pytest.mark.slow


def test_cycle_with_every_signal_option_on(loop_settings: Settings, monkeypatch):
    from embedloop.training import averaging

    # the cycle hands its catalog to the soup's cost cap: with no free allowance, three draws asked for and a
    # 20-item catalog (training dominates), a cap of 2 lets two through
    monkeypatch.setattr(averaging, "SOUP_FREE_TOKENS", 0)
    settings = loop_settings.replace(
        click_model="pbm_scores",
        safe_negatives=True,
        train_from="base",
        weight_averaging=0.7,
        multi_task=True,
        train_draws=3,
        soup_cost_cap=2.0,
        epochs=1,
    )
    with EmbedLoop(settings) as loop:
        loop.add_items([{"id": k, "text": v} for k, v in CATALOG.items()])
        simulate(loop, rounds=1)
        searches = loop.store.search_log()
        assert len(searches) >= loop.store.stats()["searches_with_selection"]
        result = loop.fine_tune(force=True)
        assert result["status"] in ("promoted", "rejected"), result
        assert result["train_examples"] >= settings.min_train_examples
        assert result["holdout_source"] == "clicks"  # no judgments: the pre-check read held-out clicks
        training = loop.registry.manifest(result["version"])["training"]
        assert training["train_draws"] == 2
        signal = training["signal"]
        # the click model read the active model's scores of every shown list, and the margin checks ran
        assert signal["click_model"]["impressions"] == sum(len(s.shown) for s in searches)
        a, b = signal["click_model"]["score_prior"]
        assert b > 0  # on this traffic, results that stand out from their list are the ones clicked
        assert signal["safe_negatives"]["checked"] > 0


def test_fine_tuner_averages_multi_task_training_back_toward_the_start(loop_settings: Settings, tmp_path):
    """Same seed, same data: the alpha=0.5 candidate is exactly halfway between the start and the alpha=1 one."""
    from sentence_transformers import SentenceTransformer

    from embedloop.models.resolve import resolve_model

    texts = dict(CATALOG)
    ids = sorted(texts)
    examples = [
        TrainingExample(f"query about {texts[i][:20]}", i, [ids[(n + 1) % len(ids)]]) for n, i in enumerate(ids)
    ]
    examples.append(TrainingExample("ticker lookup", "", source="domain", positive_text=texts[ids[0]]))
    judged = judged_examples([("best known apple", ids[0], True), ("best known apple", ids[1], False)])
    path = resolve_model("all-MiniLM-L6-v2", loop_settings.storage_path / "models-cache")
    start = SentenceTransformer(str(path), device="cpu", local_files_only=True).state_dict()
    base = loop_settings.replace(multi_task=True, epochs=1, hard_negatives=1, learning_rate=1e-3)
    full = EmbeddingFineTuner(base).train(path, examples, texts, tmp_path / "full", judgments=judged)
    half = EmbeddingFineTuner(base.replace(weight_averaging=0.5)).train(
        path, examples, texts, tmp_path / "half", judgments=judged
    )
    assert full.steps >= 3  # one batch per dataset at least: clicks, judgments, domain
    trained, averaged = full.model.state_dict(), half.model.state_dict()
    key = "0.auto_model.encoder.layer.0.attention.self.query.weight"
    key = key if key in trained else next(k for k, v in trained.items() if v.is_floating_point() and v.dim() == 2)
    assert not torch.allclose(trained[key], start[key])
    assert torch.allclose(averaged[key], 0.5 * trained[key] + 0.5 * start[key], atol=1e-5)


def test_train_draws_average_fine_tunes_of_consecutive_seeds(loop_settings: Settings, tmp_path):
    """train_draws=2 with seed 7 is exactly the mean of the seed-7 and seed-8 fine-tunes on the same data."""
    from embedloop.models.resolve import resolve_model

    texts = dict(CATALOG)
    ids = sorted(texts)
    examples = [
        TrainingExample(f"query about {texts[i][:20]}", i, [ids[(n + 1) % len(ids)]]) for n, i in enumerate(ids)
    ]
    path = resolve_model("all-MiniLM-L6-v2", loop_settings.storage_path / "models-cache")
    base = loop_settings.replace(epochs=1, hard_negatives=1, learning_rate=1e-3, train_batch_size=4, train_draws=1)
    first = EmbeddingFineTuner(base.replace(seed=7)).train(path, examples, texts, tmp_path / "a")
    second = EmbeddingFineTuner(base.replace(seed=8)).train(path, examples, texts, tmp_path / "b")
    soup = EmbeddingFineTuner(base.replace(seed=7, train_draws=2)).train(path, examples, texts, tmp_path / "soup")
    a, b, mixed = first.model.state_dict(), second.model.state_dict(), soup.model.state_dict()
    key = next(k for k, v in a.items() if v.is_floating_point() and v.dim() == 2)
    assert not torch.allclose(a[key], b[key])  # the two seeds drew different batches
    assert torch.allclose(mixed[key], 0.5 * (a[key] + b[key]), atol=1e-5)
    assert soup.steps == first.steps + second.steps
    assert soup.rows == 2 * first.rows


def test_soup_cost_cap_trains_fewer_draws_when_training_would_dominate(loop_settings: Settings, tmp_path, monkeypatch):
    """train_draws=3 on 120 rows with one catalog item to re-embed: under cap 1 only the first draw is trained."""
    from embedloop.models.resolve import resolve_model
    from embedloop.training import averaging

    monkeypatch.setattr(averaging, "SOUP_FREE_TOKENS", 0)  # tiny rows would otherwise count as free

    texts = dict(CATALOG)
    ids = sorted(texts)
    examples = [
        TrainingExample(f"{word} {texts[i][:12]}", i, [ids[(n + 1) % len(ids)]])
        for word in ("shares", "stock", "ticker", "price", "fund", "company")
        for n, i in enumerate(ids)
    ]
    path = resolve_model("all-MiniLM-L6-v2", loop_settings.storage_path / "models-cache")
    settings = loop_settings.replace(epochs=1, hard_negatives=1, train_draws=3, soup_cost_cap=1.0)
    capped = EmbeddingFineTuner(settings).train(path, examples, texts, tmp_path / "capped", reembed_texts=["SPY"])
    assert capped.draws == 1
    assert capped.rows == len(examples)  # one pass over the rows, not three


def test_cycle_chooses_the_mixing_weight_on_held_out_judgments_only(loop_settings: Settings):
    with EmbedLoop(loop_settings.replace(auto_averaging=True, epochs=1)) as loop:
        loop.add_items([{"id": k, "text": v} for k, v in CATALOG.items()])
        simulate(loop, rounds=1)
        clicks_only = loop.fine_tune(force=True)
        assert clicks_only["holdout_source"] == "clicks"
        assert clicks_only["holdout_sessions"] > 0 and clicks_only["holdout_queries"] > 0
        kept = loop.registry.manifest(clicks_only["version"])["training"]["averaging"]
        assert kept == {"alpha": 1.0, "chosen_on": None, "why": "no held-out judgments yet"}
        for n, (item, text) in enumerate(sorted(CATALOG.items()) * 3):  # 60 judged queries: ~18 held out
            loop.record_judgment(f"{text.split(' - ')[1]} shares {n}", item, relevant=True)
            loop.record_judgment(
                f"{text.split(' - ')[1]} shares {n}", "SPY" if item != "SPY" else "QQQ", relevant=False
            )
        simulate(loop, rounds=1)  # a cycle needs new selections; judgments alone do not start one
        expected = next_training_examples(loop.services())[0]
        split = split_by_query(loop.store.feedback_sessions(), loop.settings.holdout_fraction)
        held_clicks = {normalise_query(x.query) for x in split.holdout}
        assert held_clicks & {normalise_query(ex.query) for ex in expected}  # the held-out click queries train
        result = loop.fine_tune(force=True)
        assert result.get("holdout_source") == "judgments", result
        # judgments judge, so the held-out clicks train: no click session is held out, the cycle trains on them
        assert result["holdout_sessions"] == 0 and result["holdout_queries"] == 0
        assert result["train_examples"] == len(expected)
        manifest = loop.registry.manifest(result["version"])
        assert manifest["holdout_sessions"] == 0
    chosen = manifest["training"]["averaging"]
    assert chosen["chosen_on"] == "judgments"
    assert set(chosen["scores"]) == {"0.0", "0.25", "0.5", "0.75", "1.0"}
    best = max(chosen["scores"].values())
    assert chosen["scores"][str(chosen["alpha"])] == best
    # the pre-check scored the chosen model: its held-out accuracy is the best score in the search
    assert manifest["metrics"]["candidate"]["triplet_accuracy"] == pytest.approx(best, abs=1e-4)
