"""Hostile and reserved names, the gold contract, and the local-folder rule for gold."""

from __future__ import annotations

import pyarrow as pa
import pytest

from pipeline.errors import ConfigError, UnsafeNameError
from pipeline.gold import GoldContractError, publish_qlib
from pipeline.gold.names import feature_dir_name, qlib_code
from pipeline.lake.location import resolve_lake
from tests.gold.gold_synthetic import candles, write


@pytest.mark.parametrize("name", ["../evil", "a/b", "a\\b", "..", ".hidden", "x\ty", "", " BTC"])
def test_hostile_names_are_rejected(name):
    with pytest.raises(UnsafeNameError):
        feature_dir_name(name)


def test_reserved_names_get_qlibs_prefix():
    assert [feature_dir_name(n) for n in ("CON", "nul", "Com1", "LPT9", "CONX", "BTC-USDT")] == [
        "_qlib_con",
        "_qlib_nul",
        "_qlib_com1",
        "_qlib_lpt9",
        "conx",
        "btc-usdt",
    ]
    assert qlib_code("btc-usdt_x.1") == "BTC-USDT_X.1"


def test_hostile_silver_instrument_stops_publish_before_any_file(lake, gold_dir, tmp_path):
    write(lake, candles("BTC-USDT-SWAP", "1d", range(3)), candles("../../escape", "1d", range(3), seed=2))
    with pytest.raises(UnsafeNameError, match="escape"):
        publish_qlib(lake, gold_dir=gold_dir)
    assert not (gold_dir / "qlib" / ".versions").exists()
    assert not any(p.name == "escape" for p in tmp_path.rglob("*"))


def test_names_differing_only_in_case_are_refused(lake, gold_dir):
    write(lake, candles("btc-usdt-swap", "1d", range(3)), candles("BTC-USDT-SWAP", "1d", range(3), seed=2))
    with pytest.raises(UnsafeNameError, match="same Qlib folder"):
        publish_qlib(lake, gold_dir=gold_dir, freqs=("day",))


def test_contract_failure_publishes_nothing(lake, gold_dir):
    good = candles("BTC-USDT-SWAP", "1d", range(5))
    bad = candles("ETH-USDT-SWAP", "1d", range(5), seed=2)
    bad = bad.set_column(bad.schema.get_field_index("low"), "low", pa.array([1e9] * 5))  # low above high
    write(lake, good, bad)
    with pytest.raises(GoldContractError) as err:
        publish_qlib(lake, gold_dir=gold_dir, freqs=("day",))
    assert err.value.rules == {"high >= low, open and close inside [low, high]": 5}
    assert err.value.table == "gold/qlib/okx-swap/day" and err.value.sample
    assert not (gold_dir / "qlib" / "okx-swap").exists()


def test_object_store_lake_needs_a_local_gold_dir():
    lake = resolve_lake("s3://bucket/lake", env={})
    with pytest.raises(ConfigError) as err:
        publish_qlib(lake)
    assert err.value.key == "gold_dir"


def test_unknown_dataset_and_freq_are_config_errors(lake, gold_dir):
    write(lake, candles("BTC-USDT-SWAP", "1d", range(3)))
    with pytest.raises(ConfigError, match="okx-spot"):
        publish_qlib(lake, gold_dir=gold_dir, datasets=["okx-spot"])
    with pytest.raises(ConfigError, match="5min"):
        publish_qlib(lake, gold_dir=gold_dir, freqs=("5min",))
    with pytest.raises(UnsafeNameError):
        publish_qlib(lake, gold_dir=gold_dir, datasets=["../x"])


def test_duplicate_bars_are_a_contract_failure(lake, gold_dir):
    write(lake, candles("BTC-USDT-SWAP", "1d", range(5)), candles("BTC-USDT-SWAP", "1d", [2], seed=9))
    with pytest.raises(GoldContractError) as err:
        publish_qlib(lake, gold_dir=gold_dir, freqs=("day",))
    assert err.value.rules == {"one bar per instrument and slot": 1}
    assert not (gold_dir / "qlib" / "okx-swap").exists()
