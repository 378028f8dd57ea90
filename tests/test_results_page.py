"""The results page is made from the committed metrics, never typed: the committed page equals what the committed
JSON gives, every paper item has a row, and verdicts come from a fixed vocabulary."""
import json
from pathlib import Path

import pytest

from ebmlib import results_page as R

ROOT = Path(__file__).resolve().parents[1]


def test_the_committed_page_is_what_the_committed_metrics_give():
    page = ROOT / "book" / "results.md"
    assert page.is_file(), "book/results.md is missing: run ebmlib.results_page.write()"
    assert page.read_text() == R.render(), ("book/results.md disagrees with book/results/*.json: rebuild it with "
                                           "`python -c 'from ebmlib import results_page; results_page.write()'`")


def test_every_paper_item_has_a_row_and_a_regenerating_chapter_or_a_reason():
    text = R.render()
    for item, _, _, chapter, why in R.PAPER_ITEMS:
        assert f"| {item} |" in text
        assert chapter or why, f"{item}: no chapter and no reason"


def test_a_chapter_with_a_bad_verdict_is_refused(tmp_path, monkeypatch):
    record = json.loads((ROOT / "book" / "results" / "07_robot_hand.json").read_text())
    (tmp_path / "07_robot_hand.json").write_text(json.dumps(record))
    import ebmlib.chapters.robot_hand as rh
    monkeypatch.setattr(rh, "paper_rows", lambda r: [dict(item="Fig. 12 / Table 2", ours="x", verdict="great",
                                                           note="", data="d")])
    with pytest.raises(ValueError, match="verdict 'great'"):
        R.collect_rows(tmp_path)


def test_an_item_no_run_reports_says_not_run_here(tmp_path):
    text = R.render(tmp_path)                      # no committed metrics at all
    assert text.count("not run here") == len(R.PAPER_ITEMS) + len(R.BEYOND_ITEMS)
