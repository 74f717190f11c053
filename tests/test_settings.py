from __future__ import annotations

import re
from pathlib import Path

import pytest

from embedloop import ConfigError, LossName, Settings


def test_defaults_are_the_specs():
    s = Settings.from_env({})
    assert s.embedding_model == "all-mpnet-base-v2"
    assert s.fine_tune_threshold == 100
    assert s.check_interval_seconds == 3600
    assert s.min_accuracy == pytest.approx(0.70)


def test_spec_variables_are_read(tmp_path: Path):
    s = Settings.from_env(
        {
            "EMBEDDING_MODEL": "all-MiniLM-L6-v2",
            "LEARNING_STORAGE_PATH": str(tmp_path),
            "ADAPTIVE_LEARNING_DB": str(tmp_path / "fb.db"),
            "EMBEDLOOP_FINE_TUNE_THRESHOLD": "5",
            "EMBEDLOOP_LOSS": "TRIPLET",
            "EMBEDLOOP_POSITION_BIAS": "yes",
        }
    )
    assert s.embedding_model == "all-MiniLM-L6-v2"
    assert s.storage_path == tmp_path
    assert s.sqlalchemy_url == f"sqlite:///{(tmp_path / 'fb.db').resolve()}"
    assert s.fine_tune_threshold == 5
    assert s.loss is LossName.TRIPLET
    assert s.position_bias is True


def test_url_database_is_passed_through(tmp_path: Path):
    s = Settings(storage_path=tmp_path, database_url="postgresql+psycopg://u@localhost/db")
    assert s.sqlalchemy_url == "postgresql+psycopg://u@localhost/db"


@pytest.mark.parametrize(
    ("env", "value", "fragment"),
    [
        ("EMBEDLOOP_FINE_TUNE_THRESHOLD", "many", "an integer"),
        ("EMBEDLOOP_FINE_TUNE_THRESHOLD", "0", "must be >= 1"),
        ("EMBEDLOOP_MIN_ACCURACY", "1.5", "between 0 and 1"),
        ("EMBEDLOOP_CHECK_INTERVAL_SECONDS", "-3", "must be > 0"),
        ("EMBEDLOOP_LOSS", "hinge", "'mnrl'"),
        ("EMBEDLOOP_POSITION_BIAS", "maybe", "boolean"),
        ("EMBEDLOOP_TRIAL_QUERIES", "some", "'unseen', 'all'"),
        ("EMBEDLOOP_MAX_TRAIN_EXAMPLES", "3", "0 (no limit) or at least min_train_examples"),
    ],
)
def test_bad_values_name_variable_value_and_allowed(env: str, value: str, fragment: str):
    with pytest.raises(ConfigError) as info:
        Settings.from_env({env: value})
    message = str(info.value)
    assert env in message
    assert value in message
    assert fragment in message


def test_public_dict_masks_tokens(tmp_path: Path):
    s = Settings(storage_path=tmp_path, api_token="secret")
    assert s.public_dict()["api_token"] == "***"


def test_torch_threads_setting_is_applied(tmp_path: Path):
    import torch

    from embedloop import EmbedLoop
    from embedloop.models.encoder import HashingEncoder

    before = torch.get_num_threads()
    try:
        EmbedLoop(Settings(storage_path=tmp_path, torch_threads=1), encoder=HashingEncoder()).close()
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)
    with pytest.raises(ConfigError, match="EMBEDLOOP_TORCH_THREADS"):
        Settings.from_env({"EMBEDLOOP_TORCH_THREADS": "0"})


@pytest.mark.parametrize(
    ("field", "value", "fragment"),
    [
        ("click_model", "cascade", "one of off, pbm"),
        ("train_from", "parent", "one of active, base"),
        ("exploration", "random", "one of off, fairpairs, insert, both"),
        ("weight_averaging", 0.0, "(0, 1]"),
        ("exploration_rate", 1.5, "[0, 1]"),
        ("negative_relative_margin", 1.0, "[0, 1)"),
        ("train_draws", 0, "from 1 to 16"),
        ("soup_cost_cap", 0.5, "0 (no limit) or a multiple from 1 to 100"),
    ],
)
def test_training_signal_options_are_validated(field: str, value: object, fragment: str):
    with pytest.raises(ConfigError, match=re.escape(fragment)):
        Settings(**{field: value})


def test_auto_averaging_and_a_fixed_mixing_weight_exclude_each_other():
    assert Settings(auto_averaging=True).weight_averaging == 1.0
    with pytest.raises(ConfigError, match="EMBEDLOOP_WEIGHT_AVERAGING=0.5 is not valid: must stay 1.0 when auto"):
        Settings(auto_averaging=True, weight_averaging=0.5)


def test_training_signal_defaults_and_read_from_env(tmp_path: Path):
    s = Settings()
    assert (s.click_model, s.safe_negatives, s.weight_averaging, s.train_from, s.multi_task, s.exploration) == (
        "pbm_scores",
        False,
        1.0,
        "active",
        False,
        "off",
    )
    env = {
        "EMBEDLOOP_CLICK_MODEL": "off",
        "EMBEDLOOP_WEIGHT_AVERAGING": "0.5",
        "EMBEDLOOP_MULTI_TASK": "true",
        "EMBEDLOOP_TRAIN_DRAWS": "3",
    }
    s = Settings.from_env(env)
    assert (s.click_model, s.weight_averaging, s.multi_task, s.train_draws) == ("off", 0.5, True, 3)


def test_trial_queries_default_and_environment():
    assert Settings().trial_queries == "all"
    assert Settings.from_env({"EMBEDLOOP_TRIAL_QUERIES": "UNSEEN"}).trial_queries == "unseen"
