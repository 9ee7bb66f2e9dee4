"""The local run report's timeline: two embedded PNG plots, a table, the promotion decision."""
from __future__ import annotations

import base64
import io
import json
import re

import pytest

from pipelines.local import report_plots as rp
from pipelines.local.report import render_html, write_report

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
IMG = re.compile(r'<img alt="([^"]*)" src="data:image/png;base64,([A-Za-z0-9+/=]+)">')


def timeline() -> list[dict]:
    row = {"model": "outcomes v1", "phase": "before promotion", "drift_threshold": 0.1, "rows": 300, "labelled": 300}
    return [
        {**row, "window": "normal", "label": "normal traffic (early period)", "drift_score": 0.04,
         "drift_status": "ok", "auroc": 0.91, "auroc_ci": [0.85, 0.95]},
        {**row, "window": "shifted", "label": "new period", "drift_score": 0.32, "drift_status": "violations",
         "auroc": 0.74, "auroc_ci": [0.62, 0.84]},
        {**row, "window": "after-promotion", "label": "after promotion", "model": "outcomes v2",
         "phase": "after promotion", "drift_score": 0.12, "drift_status": "violations", "auroc": 0.86,
         "auroc_ci": [0.78, 0.93]},
    ]


PROMOTION = {"promoted": True, "reason": "challenger not worse", "champion_auroc": 0.80, "challenger_auroc": 0.86,
             "difference": 0.06, "ci_low": 0.01, "ci_high": 0.11}


def images(page: str) -> list[tuple[str, bytes]]:
    return [(alt, base64.b64decode(b64, validate=True)) for alt, b64 in IMG.findall(page)]


def readable(png: bytes) -> tuple[int, int]:
    """(width, height) as Pillow (else matplotlib) decodes the PNG."""
    try:
        from PIL import Image
    except ImportError:  # pragma: no cover - Pillow comes with matplotlib
        import matplotlib.image
        h, w = matplotlib.image.imread(io.BytesIO(png), format="png").shape[:2]
        return w, h
    with Image.open(io.BytesIO(png)) as im:
        im.load()
        return im.size


def test_timeline_is_two_embedded_pngs_a_table_and_the_promotion(tmp_path):
    write_report(tmp_path, {"executions": [], "timeline": timeline(), "promotion": PROMOTION,
                            "drift": {"windows": {"normal": {"drift_score": 0.04}}}})
    page = (tmp_path / "report.html").read_text(encoding="utf-8")
    imgs = images(page)
    assert [alt for alt, _ in imgs] == ["drift score over windows", "AUROC over windows"]
    for _, png in imgs:
        assert png.startswith(PNG_SIGNATURE)
        w, h = readable(png)
        assert w > 100 and h > 100
    assert "<section id='timeline'>" in page and page.count("<figcaption>") == 2
    assert "<td>after-promotion</td>" in page and "<td>[0.850, 0.950]</td>" in page and "<td>0.040</td>" in page
    assert "Challenger promoted: challenger not worse." in page and "(95% CI +0.010 to +0.110)" in page
    assert "<h2>Drift</h2>" in page  # the existing sections stay
    assert "src=\"http" not in page and "<script" not in page  # self-contained, no script
    assert json.loads((tmp_path / "summary.json").read_text())["timeline"][0]["window"] == "normal"


@pytest.mark.parametrize("summary", [{}, {"timeline": None}, {"timeline": []}, {"timeline": "oops"},
                                     {"timeline": [None, 3]}])
def test_missing_or_empty_timeline_has_no_plot_section(summary):
    page = render_html({"executions": [], **summary})
    assert "<img" not in page and "id='timeline'" not in page and "Promotion" not in page


def test_none_auroc_missing_keys_and_nan_are_handled():
    tl = timeline()
    tl[1].update(auroc=None, auroc_ci=None, labelled=0)
    tl.append({})  # every key missing
    tl.append({"drift_score": float("nan"), "drift_status": None, "auroc": "0.9", "auroc_ci": [0.9, 0.1],
               "phase": "after promotion", "label": "price $5", "window": r"$\frac$ and $x$"})
    page = render_html({"timeline": tl, "promotion": {"promoted": False}})
    imgs = images(page)
    assert len(imgs) == 2 and all(readable(png)[0] > 100 for _, png in imgs)
    assert "<td>window 4</td>" in page  # an unnamed window gets a name
    assert "Challenger not promoted." in page


def test_plots_are_deterministic_and_promotion_marker_sits_between_phases():
    assert rp.drift_png(timeline()) == rp.drift_png(timeline())
    assert rp.auroc_png(timeline()) == rp.auroc_png(timeline())
    assert rp.promotion_x(timeline()) == 1.5
    assert rp.promotion_x(timeline()[:2]) is None  # nothing after promotion: no marker
    assert rp.promotion_x([{"phase": "after promotion"}]) is None


def test_text_is_escaped():
    tl = timeline()
    tl[0].update(window="<b>w</b>", label="<script>alert('x')</script>", model="a&b")
    page = render_html({"timeline": tl, "promotion": {**PROMOTION, "reason": "<img src=x onerror=alert(1)>"}})
    assert "<script>" not in page and "<b>w</b>" not in page and "<img src=x" not in page
    assert "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt;" in page and "&lt;b&gt;w&lt;/b&gt;" in page
    assert "a&amp;b" in page and "&lt;img src=x onerror=alert(1)&gt;" in page


def test_table_cells_format_numbers_and_cis():
    assert rp.fmt(None) == "" and rp.fmt(300) == "300" and rp.fmt(0.12345) == "0.123"
    assert rp.fmt([0.1, 0.2]) == "[0.100, 0.200]" and rp.fmt({"ci_low": 0.1, "ci_high": 0.2}) == "[0.100, 0.200]"
    assert rp.ci([0.2, 0.1]) is None and rp.ci([None, 0.1]) is None and rp.num(True) is None
