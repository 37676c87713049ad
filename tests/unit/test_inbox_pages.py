"""How the inbox's pages show values, without a browser."""

from __future__ import annotations

from signoff.server.inbox import pages


def test_times_in_history_data_show_like_every_other_time() -> None:
    shown = str(pages.event_value("2026-11-29T18:15:23.849722+00:00"))
    assert shown == '<time datetime="2026-11-29T18:15:23+00:00">2026-11-29 18:15 UTC</time>'


def test_other_values_are_escaped_text() -> None:
    assert str(pages.event_value("2026-11-29 is the day")) == "2026-11-29 is the day"
    assert str(pages.event_value("2026-11-29T18:15:23")) == "2026-11-29T18:15:23"  # naive
    assert str(pages.event_value("<b>x</b>")) == "&lt;b&gt;x&lt;/b&gt;"
    assert str(pages.event_value(["alice"])) == "[&#34;alice&#34;]"
