import pytest

from pipeline.config import DEFAULT_CONFIG, load_config, parse_config
from pipeline.errors import ConfigError


def test_the_shipped_config_loads() -> None:
    cfg = load_config(DEFAULT_CONFIG)
    assert set(cfg.venues) == {"okx", "deribit"}
    assert cfg.settings.flush_interval_secs == 3.0
    assert cfg.venues["deribit"].instruments == "options:ETH"


@pytest.mark.parametrize(
    ("raw", "key"),
    [
        ({"stream": {"flush_intreval_secs": 3}}, "stream.flush_intreval_secs"),
        ({"stream": {"flush_interval_secs": -1}}, "stream.flush_interval_secs"),
        ({"stream": {"okx": {"url": "http://x"}}}, "stream.okx.url"),
        ({"stream": {"okx": {"instruments": "BTC-USDT"}}}, "stream.okx.instruments"),
        ({"stream": {"okx": {"chanels": []}}}, "stream.okx.chanels"),
        ({"strem": {}}, "strem"),
        ({"stream": {"backoff_initial_secs": 10, "backoff_max_secs": 5}}, "stream.backoff_max_secs"),
    ],
)
def test_bad_configuration_names_the_key(raw: dict, key: str) -> None:
    with pytest.raises(ConfigError) as err:
        parse_config(raw)
    assert key in str(err.value)
    assert "Fix:" in str(err.value)


def test_missing_file_is_a_config_error(tmp_path) -> None:
    with pytest.raises(ConfigError) as err:
        load_config(tmp_path / "nope.toml")
    assert "does not exist" in str(err.value)
