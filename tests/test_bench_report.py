"""The benchmark suite's report and regression check, on small synthetic results
(no benchmark runs here, no timings asserted)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"
sys.path.insert(0, str(BENCHMARKS))  # the scripts import each other as top-level modules

import compare  # noqa: E402
import report  # noqa: E402
from _common import ratio  # noqa: E402


def results(**values: float) -> dict[str, Any]:
    """A suite results file with one benchmark holding the given ratios."""
    ratios = [
        ratio("rounds: fsspec-local vs memory", values.get("rounds", 1.3), baseline="memory",
              bar=1.5),
        ratio("serde: encode speed-up", values.get("speedup", 20.0), baseline="flower",
              better="higher", bar=3.0),
        ratio("flower: 100 MB end to end, s", values.get("seconds", 0.8), baseline="(absolute)",
              bar=1.5, absolute=True),
    ]  # fmt: skip
    return {
        "suite": {"created": "2026-01-01T00:00:00", "mode": "full", "cpus": 2},
        "benchmarks": {"synthetic": {"ratios": ratios}},
        "skipped": {"scale": "transport 'fsspec-local' is not installed"},
        "pending": report.PENDING,
    }


def test_a_ratio_more_than_20_percent_worse_is_flagged_in_either_direction() -> None:
    before = results(rounds=1.0, speedup=20.0)
    after = results(rounds=1.25, speedup=15.0)  # 1.25x worse; 20/15 = 1.33x worse
    comparison = compare.compare(before, after)
    assert sorted(comparison["regressions"]) == [
        "rounds: fsspec-local vs memory",
        "serde: encode speed-up",
    ]


def test_small_changes_and_improvements_are_not_regressions() -> None:
    before = results(rounds=1.0, speedup=20.0)
    after = results(rounds=1.19, speedup=40.0)
    comparison = compare.compare(before, after)
    assert comparison["regressions"] == []
    assert "improved" in compare.describe(comparison)


def test_absolute_times_are_never_compared() -> None:
    comparison = compare.compare(results(seconds=0.5), results(seconds=5.0))
    names = {c["name"] for c in comparison["changes"]}
    assert "flower: 100 MB end to end, s" not in names
    assert comparison["regressions"] == []


def test_ratios_only_one_run_has_are_listed_not_compared() -> None:
    before, after = results(), results()
    after["benchmarks"]["more"] = {"ratios": [ratio("scale: cpu", 1.0, baseline="10")]}
    comparison = compare.compare(before, after)
    assert comparison["only_current"] == ["scale: cpu"]


def test_a_failed_benchmark_has_no_ratios_and_breaks_nothing() -> None:
    after = results()
    after["benchmarks"]["flower"] = {"error": "CalledProcessError: exit 1"}
    assert compare.compare(results(), after)["regressions"] == []
    page = report.render_markdown(after)
    assert "flower" in page and "failed" in page


def test_compare_cli_exit_code(tmp_path: Path) -> None:
    old, new = tmp_path / "old.json", tmp_path / "new.json"
    old.write_text(json.dumps(results(rounds=1.0)))
    new.write_text(json.dumps(results(rounds=2.0)))
    assert compare.main([str(old), str(new)]) == 1
    assert compare.main([str(old), str(old)]) == 0


def test_bar_verdicts_follow_the_ratio_direction() -> None:
    assert ratio("x", 1.4, baseline="b", bar=1.5)["meets_bar"] is True
    assert ratio("x", 1.6, baseline="b", bar=1.5)["meets_bar"] is False
    assert ratio("x", 2.0, baseline="b", better="higher", bar=3.0)["meets_bar"] is False
    assert ratio("x", 2.0, baseline="b")["meets_bar"] is None


def test_page_shows_bars_regressions_skips_and_pending_items() -> None:
    current = results(rounds=2.0)
    current["comparison"] = compare.compare(results(rounds=1.0), current)
    page = report.render_markdown(current)
    assert "| rounds: fsspec-local vs memory | 2.00x | memory | ≤ 1.5 ✗ |" in page
    assert "| serde: encode speed-up | 20x | flower | ≥ 3 ✓ |" in page
    assert "## Regressions" in page and "| rounds: fsspec-local vs memory | 1 | 2 |" in page
    assert "issue 8" in page and "issue 6" in page  # encryption and Drive: pending
    assert "not installed" in page  # a skipped benchmark says why


def test_real_sections_render_from_recorded_shapes() -> None:
    """Every section renderer accepts the JSON its benchmark writes (the recorded file)."""
    recorded = BENCHMARKS / "results" / "results.json"
    if not recorded.exists():
        pytest.skip("no recorded results yet")
    data = json.loads(recorded.read_text())
    page = report.render_markdown(data)
    for name in data["benchmarks"]:
        if name in report.SECTIONS and "error" not in data["benchmarks"][name]:
            assert report.SECTIONS[name](data["benchmarks"][name]) in page


def test_plot_writes_a_png(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    png, docs = tmp_path / "img" / "bench.png", tmp_path / "benchmarks.md"
    report.write_report(results(), docs, png)
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "![Benchmark summary](img/bench.png)" in docs.read_text()


def broadcast_run(store: str) -> dict[str, Any]:
    """bench_broadcast's JSON in miniature: N = 2 round trip, N = 50 send only (slowed,
    on Drive), a 100 MB model; on Drive the model's calls are 60 at N = 50 (bar 53) and
    the send phase 1.3x one upload (bar 1.2x)."""
    model = 100 << 20

    def phase(size: int, calls: int = 0, seconds: float = 1.0) -> dict[str, Any]:
        out: dict[str, Any] = {"bytes": size, "blob_bytes": 0, "message_bytes": size,
                               "seconds": seconds}  # fmt: skip
        if store != "fsspec-local":
            out["store_bytes"] = size + 500
        if store == "gdrive":
            out.update(api_calls=calls, http_requests=calls)
        return out

    network = {"latency": 0.05, "upload_rate": 100e6} if store == "gdrive" else None
    rows = []
    for n, trip in ((2, True), (50, False)):
        row: dict[str, Any] = {
            "datasites": n, "round_trip": trip, "model_bytes": model,
            "bar_bytes": int(1.05 * model + n * 65536),
            "before": {"warmup": phase(1 << 20, 4 * n), "phase": phase(n * model, 16 * n),
                       "reuse": phase(n * model, 16 * n)},
            "after": {"warmup": phase(1 << 20, 4 * n), "phase": phase(model, 3 * n + 60),
                      "reuse": phase(3000, 3 * n)},
        }  # fmt: skip
        row["after_vs_model"] = (model + 500) / model
        if store == "gdrive" and not trip:
            calls = {"files.create": 2, "files.upload": 13, "permissions.create": 50,
                     "files.list": 20}  # fmt: skip
            row.update(model_calls=calls, model_api_calls=85, blob_api_calls=65,
                       model_http_requests=16, network=network,
                       reference_s=2.0, reference_chunked_s=2.4, send_vs_reference=1.3,
                       before_send_vs_reference=26.0)  # fmt: skip
            row["after"]["send_s"] = 2.6
        rows.append(row)
    bar = ratio(f"broadcast {store}: N=50", 1.0, baseline="the model's size", bar=1.08)
    return {"transport": store, "model_mb": 100, "network": network, "rows": rows,
            "created": "2026-01-01T00:00:00", "ratios": [bar]}  # fmt: skip


def test_broadcast_shows_every_transport_its_bars_and_its_plot(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The suite's fsspec-local broadcast and the recorded GCS and Drive runs: a table
    each, Drive's API calls and send-phase time against their bars, and the plot."""
    pytest.importorskip("matplotlib")
    stores = {}
    for store in ("gcs", "gdrive"):
        stores[store] = tmp_path / f"broadcast-{store}.json"
        stores[store].write_text(json.dumps(broadcast_run(store)))
    monkeypatch.setattr(report, "BROADCAST_STORES", stores)
    current = results()
    current["benchmarks"]["broadcast"] = broadcast_run("fsspec-local")
    png, docs = tmp_path / "img" / "bench.png", tmp_path / "benchmarks.md"
    report.write_report(current, docs, png)
    page = docs.read_text()
    for store in ("fsspec-local", "gcs", "gdrive"):
        assert f"### {store}\n" in page
    assert "| 50 (send only, slowed) | 5,000.0 MB | 100.0 MB | 1.000x | 108.1 MB ✓ |" in page
    assert "| 65 (2 create, 13 upload, 50 grants) | 53 ✗ | 20 |" in page  # > 3 + N
    assert "| 50 | 2.00 s | 2.40 s | 2.60 s | 1.300x | 1.2x ✗ | 1.00 s (26.0x) |" in page
    assert "broadcast gdrive: N=50 (recorded)" in page  # in the bars summary too
    assert (tmp_path / "img" / "broadcast.png").read_bytes()[:4] == b"\x89PNG"
    assert "](img/broadcast.png)" in page
