"""What `make up` prints when it is ready: the UI address and the three pages an operator opens first."""

from __future__ import annotations

from pathlib import Path

from flows.ops.up import ready_text


def test_ready_text_names_the_ui_and_its_first_pages_as_full_urls() -> None:
    text = ready_text("http://127.0.0.1:4311/api", Path("/lake/_ops/alerts.log"))
    assert "Prefect UI: http://127.0.0.1:4311\n" in text
    urls = [line.split()[-1] for line in text.splitlines() if "http" in line and "Prefect UI" not in line]
    assert urls == [
        "http://127.0.0.1:4311/runs",
        "http://127.0.0.1:4311/artifacts",
        "http://127.0.0.1:4311/automations",
    ]
    assert "/lake/_ops/alerts.log" in text and "Ctrl-C" in text
    # a trailing slash on the API address does not double the slashes
    assert "http://127.0.0.1:4311/runs" in ready_text("http://127.0.0.1:4311/api/", Path("a"))
