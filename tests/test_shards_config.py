"""[[stream.shards]]: parsed and checked as a set (names, venues, overlaps), defaults for old configurations,
and the collector configuration of one shard."""

from __future__ import annotations

import tomllib
from typing import Any

import pytest

from pipeline.config import DEFAULT_CONFIG, load_config, parse_config
from pipeline.errors import ConfigError

VENUES = """
[stream]
name = "main"
[stream.okx]
url = "sim"
instruments = ["BTC-USDT", "ETH-USDT", "BTC-USDT-SWAP"]
channels = ["trades", "quotes"]
[stream.deribit]
url = "wss://www.deribit.com"
instruments = "options:ETH"
extra = ["ETH-PERPETUAL"]
channels = ["trades", "ticker"]
"""


def parse(shards: str, venues: str = VENUES) -> Any:
    return parse_config(tomllib.loads(venues + shards))


def test_without_shard_tables_each_venue_is_one_shard_named_after_it() -> None:
    cfg = load_config(DEFAULT_CONFIG)
    shards = cfg.shard_list()
    assert [s.name for s in shards] == ["okx", "deribit"]
    assert shards[1].instruments == "options:ETH" and shards[1].extra == ("ETH-PERPETUAL",)
    one = cfg.for_shard("deribit")
    assert one.name == "default-deribit" and list(one.venues) == ["deribit"]
    assert one.venues["deribit"] == cfg.venues["deribit"]


def test_declared_shards_split_a_venue_and_inherit_what_they_leave_out() -> None:
    cfg = parse("""
[[stream.shards]]
name = "okx-spot"
venue = "okx"
instruments = ["BTC-USDT", "ETH-USDT"]
[[stream.shards]]
name = "okx-swap"
venue = "okx"
instruments = ["BTC-USDT-SWAP"]
channels = ["trades"]
[[stream.shards]]
name = "deribit"
venue = "deribit"
""")
    spot, swap, deribit = cfg.shard_list()
    assert spot.channels == ("trades", "quotes") and spot.extra == ()  # the venue's channels, no extra
    assert swap.instruments == ("BTC-USDT-SWAP",) and swap.channels == ("trades",)
    assert deribit.instruments == "options:ETH" and deribit.extra == ("ETH-PERPETUAL",)
    one = cfg.for_shard("okx-swap")
    assert one.name == "main-okx-swap"
    assert one.venues["okx"].instruments == ("BTC-USDT-SWAP",) and one.venues["okx"].url == "sim"
    assert one.settings == cfg.settings
    # the same instruments on different channels are different data: allowed
    parse("""
[[stream.shards]]
name = "trades"
venue = "okx"
channels = ["trades"]
[[stream.shards]]
name = "quotes"
venue = "okx"
channels = ["quotes"]
[[stream.shards]]
name = "deribit"
venue = "deribit"
""")


DERIBIT_SHARD = '\n[[stream.shards]]\nname = "d"\nvenue = "deribit"\n'


@pytest.mark.parametrize(
    ("shards", "key", "words"),
    [
        ('[[stream.shards]]\nname = "a b"\nvenue = "okx"' + DERIBIT_SHARD, "stream.shards[0].name", "simple name"),
        ('[[stream.shards]]\nname = "a"\nvenue = "binance"' + DERIBIT_SHARD, "stream.shards[0].venue", "one of"),
        ('[[stream.shards]]\nname = "a"\nvenu = "okx"' + DERIBIT_SHARD, "stream.shards[0].venu", "unknown key"),
        (
            '[[stream.shards]]\nname = "a"\nvenue = "okx"\nurl = "sim"' + DERIBIT_SHARD,
            "stream.shards[0].url",
            "unknown",
        ),
        (
            '[[stream.shards]]\nname = "a"\nvenue = "okx"\ninstruments = "BTC-USDT"' + DERIBIT_SHARD,
            "stream.shards[0].instruments",
            "not a list",
        ),
        (
            '[[stream.shards]]\nname = "a"\nvenue = "okx"\nchannels = []' + DERIBIT_SHARD,
            "stream.shards[0].channels",
            "empty",
        ),
        (
            '[[stream.shards]]\nname = "d"\nvenue = "okx"' + DERIBIT_SHARD,
            "stream.shards[1].name",
            "already used by stream.shards[0]",
        ),
        ('[[stream.shards]]\nname = "a"\nvenue = "okx"', "stream.deribit", "no [[stream.shards]] streams it"),
        (
            '[[stream.shards]]\nname = "a"\nvenue = "okx"\ninstruments = ["BTC-USDT", "ETH-USDT"]\n'
            '[[stream.shards]]\nname = "b"\nvenue = "okx"\ninstruments = ["ETH-USDT"]\nchannels = ["quotes"]'
            + DERIBIT_SHARD,
            "stream.shards[1].instruments",
            "both capture okx 'ETH-USDT' on channel 'quotes'",
        ),
        (
            '[[stream.shards]]\nname = "a"\nvenue = "okx"' + DERIBIT_SHARD + '[[stream.shards]]\nname = "perp"\n'
            'venue = "deribit"\ninstruments = ["ETH-PERPETUAL"]\nchannels = ["trades"]',
            "stream.shards[2].instruments",
            "'ETH-PERPETUAL'",
        ),
        (
            '[[stream.shards]]\nname = "a"\nvenue = "okx"' + DERIBIT_SHARD + '[[stream.shards]]\nname = "one"\n'
            'venue = "deribit"\ninstruments = ["ETH-27JUN26-3000-C"]\nchannels = ["ticker"]',
            "stream.shards[2].instruments",
            "(one of 'options:ETH')",
        ),
    ],
)
def test_bad_shards_name_the_key_and_the_fix(shards: str, key: str, words: str) -> None:
    with pytest.raises(ConfigError) as err:
        parse(shards)
    assert err.value.key == key, str(err.value)
    assert words in str(err.value) and "Fix:" in str(err.value)


def test_a_universe_shard_overlaps_any_other_shard_of_its_venue_on_a_shared_channel() -> None:
    venues = '[stream.okx]\ninstruments = "universe"\nchannels = ["trades"]\n'
    with pytest.raises(ConfigError) as err:
        parse('[[stream.shards]]\nname = "u"\nvenue = "okx"\n[[stream.shards]]\nname = "b"\nvenue = "okx"\n'
              'instruments = ["BTC-USDT"]', venues)  # fmt: skip
    assert "the instruments of 'universe'" in str(err.value)
    # options of two currencies cannot meet
    deribit = '[stream.deribit]\ninstruments = "options:ETH"\nchannels = ["trades"]\n'
    cfg = parse('[[stream.shards]]\nname = "eth"\nvenue = "deribit"\n[[stream.shards]]\nname = "btc"\n'
                'venue = "deribit"\ninstruments = "options:BTC"', deribit)  # fmt: skip
    assert [s.instruments for s in cfg.shard_list()] == ["options:ETH", "options:BTC"]


def test_shards_must_be_an_array_of_tables() -> None:
    with pytest.raises(ConfigError) as err:
        parse_config({"stream": {"shards": "okx"}})
    assert err.value.key == "stream.shards" and "[[stream.shards]]" in err.value.fix


def test_an_unknown_shard_is_refused_with_the_known_names() -> None:
    with pytest.raises(ConfigError) as err:
        load_config(DEFAULT_CONFIG).for_shard("okx-spot")
    assert err.value.key == "shard" and "deribit, okx" in str(err.value)
