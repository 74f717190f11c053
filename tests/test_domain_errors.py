"""State checks and refusals raise domain errors from embedloop.errors, not asserts or bare ValueErrors."""

from __future__ import annotations

import pytest

from embedloop import EmbedLoop, StorageError
from embedloop.errors import EmbedLoopError, TrainingDataError, VersionInUseError


def test_removing_the_active_version_is_a_domain_error(fake_loop: EmbedLoop):
    with pytest.raises(VersionInUseError, match="roll back to another version first"):
        fake_loop.registry.remove(0)


def test_a_storage_without_active_pointer_is_a_storage_error(fake_loop: EmbedLoop):
    (fake_loop.registry.root / "ACTIVE").unlink()
    with pytest.raises(StorageError, match="no ACTIVE model version"):
        _ = fake_loop.active_version
    with pytest.raises(StorageError, match="no ACTIVE model version"):
        fake_loop.search("anything")


def test_finetuner_without_rows_raises_training_data_error(settings, tmp_path):
    from sentence_transformers import SentenceTransformer

    from embedloop.models import resolve_model
    from embedloop.training.finetuner import EmbeddingFineTuner

    model = SentenceTransformer(str(resolve_model(settings.embedding_model, tmp_path / "cache")), device="cpu")
    with pytest.raises(TrainingDataError, match="No training rows could be built from 0 example") as info:
        EmbeddingFineTuner(settings).train(model, [], {}, tmp_path / "out")
    assert isinstance(info.value, EmbedLoopError) and not isinstance(info.value, ValueError)
