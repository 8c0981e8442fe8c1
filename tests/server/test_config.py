"""Settings that would silently turn a guard off are refused when the Config is made."""

from __future__ import annotations

import math

import pytest

from rawstream import Config


@pytest.mark.parametrize(
    "settings",
    [
        {"ws_max_message_bytes": -1},  # zlib reads max_length 0 as "no bound"
        {"ws_max_message_bytes": 0},
        {"max_body_bytes": -5},
        {"header_timeout": 0},
        {"header_timeout": math.nan},
        {"ws_ping_interval": -1.0},
        {"max_connections_per_client": 0},
        {"shutdown_retry_ms": (5000, 1000)},
        {"ws_allowed_origins": ("https://app.example/",)},
        {"ws_allowed_origins": ("null",)},
    ],
)
def test_out_of_range_settings_are_refused(settings: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        Config(**settings)  # type: ignore[arg-type]


def test_off_switches_and_defaults_are_accepted() -> None:
    config = Config(ws_ping_interval=None, sse_keepalive=None, max_connections_per_client=None)
    assert config.ws_allowed_origins == ()
    assert Config(ws_allowed_origins=["https://app.example"]).ws_allowed_origins == (
        "https://app.example",
    )
