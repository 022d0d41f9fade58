"""report.html, structurally: one SVG a scenario that ran, with the recorded points and markers; the
verdict table; nothing external, no script."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from html.parser import HTMLParser

from cert_support import summary

from rigs.certify_html import render, requirement_verdict, requirement_verdicts, timeline_svg

SVG = "{http://www.w3.org/2000/svg}"


class Collect(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))


def parse(page: str) -> list[tuple[str, dict[str, str | None]]]:
    collect = Collect()
    collect.feed(page)
    return collect.tags


def svgs(page: str) -> list[ET.Element]:
    return [ET.fromstring(m) for m in re.findall(r"<svg class=\"timeline\".*?</svg>", page, flags=re.S)]


def test_requirement_verdicts():
    assert requirement_verdict(1, 1, 0) == "FAIL"
    assert requirement_verdict(2, 0, 3) == "PASS"
    assert requirement_verdict(0, 0, 2) == "SKIPPED"
    assert requirement_verdict(0, 0, 0) == "NOT RUN"
    assert requirement_verdicts(summary()) == {"R-START": "PASS", "R-RECONNECT": "FAIL", "R-LIVE": "SKIPPED",
                                               "R-OCPP": "NOT RUN"}


def test_one_svg_a_scenario_with_a_timeline_with_its_points_and_markers():
    data = summary()
    page = render(data)
    plots = svgs(page)
    assert len(plots) == 2  # the skipped scenario had no rig, so no timeline
    first = plots[0]
    readings = data["scenarios"][0]["timeline"]["readings"]
    for line in ("power", "energy"):
        polylines = first.findall(f"{SVG}polyline[@class='{line}']")
        points = sum(len(p.get("points", "").split()) for p in polylines)
        assert points == len(readings) == sum(int(p.get("data-points", 0)) for p in polylines)
        assert len(first.findall(f"{SVG}circle[@class='{line}-point']")) == len(readings)
    markers = first.findall(f"{SVG}*[@class]")
    classes = [m.get("class") for m in markers]
    assert classes.count("marker command") == 3
    assert classes.count("marker fault") == 4
    assert classes.count("marker error-raised") == 1 and classes.count("marker error-cleared") == 1
    assert classes.count("error-band") == 1
    texts = " ".join(t.text or "" for t in first.iter(f"{SVG}text"))
    assert "time since the scenario began (s)" in texts and "power total (kW)" in texts
    assert "energy import (Wh)" in texts
    assert first.find(f"{SVG}g[@class='legend']") is not None
    assert first.get("data-readings") == str(len(readings))
    # A marker's tooltip has the whole event, escaped.
    titles = [t.text or "" for t in first.iter(f"{SVG}title")]
    assert any("UNEXPECTED_ERROR" in t and "no <answer> & more" in t for t in titles)


def test_the_page_has_the_verdicts_run_facts_and_steps():
    page = render(summary())
    assert "<table class=\"requirements\">" in page
    rows = re.findall(r"<tr><td>(R-[A-Z]+)</td><td><span class=\"v v-([A-Z-]+)\">", page)
    assert rows == [("R-START", "PASS"), ("R-RECONNECT", "FAIL"), ("R-LIVE", "SKIPPED"),
                    ("R-OCPP", "NOT-RUN")]
    for fact in ("virtual.toml", summary()["run"]["rig_sha256"], "20240601", "driver.PowermeterDriver"):
        assert fact in page
    assert page.count('<section class="scenario"') == 3
    assert "Link drop &lt;1&gt;" in page and "Link drop <1>" not in page
    assert "stop answered &lt;UNEXPECTED_ERROR&gt;" in page
    assert "not run" in page and "No timeline" in page


def test_the_page_is_self_contained():
    page = render(summary())
    tags = parse(page)
    assert not [t for t, _ in tags if t in ("script", "link", "img", "iframe", "object", "embed")]
    for _, attrs in tags:
        for name in ("src", "href"):
            value = attrs.get(name)
            assert value is None or value.startswith("#"), f"{name}={value}"
    assert "url(" not in page and "@import" not in page


def test_an_empty_timeline_still_draws_axes():
    svg = timeline_svg({"readings": [], "commands": [], "faults": [], "errors": []})
    root = ET.fromstring(svg)
    assert root.findall(f"{SVG}polyline") == []
    assert "time since the scenario began (s)" in svg


def test_the_lines_break_where_the_link_was_cut_or_an_error_raised():
    plot = svgs(render(summary()))[0]
    segments = [len(p.get("points", "").split()) for p in plot.findall(f"{SVG}polyline[@class='power']")]
    # readings at 0.5 .. 2.25 s every 0.25 s; the link is cut at 1.0 s (with a reading at that instant)
    # and an error raised at 1.3 s
    assert segments == [4, 4]


def test_markers_close_together_share_one_label_cut_short_before_the_next():
    faults = [{"t": 1.0, "name": "power_off"}, {"t": 1.001, "name": "power_on"},
              {"t": 2.0, "name": "link_down"}, {"t": 5.0, "name": "link_up"}]
    root = ET.fromstring(timeline_svg({"readings": [], "commands": [], "faults": faults, "errors": []},
                                      end=10.0))
    labels = [t.text for t in root.iter(f"{SVG}text") if t.get("class") == "marker-label"]
    assert labels[0].startswith("power off") and labels[0].endswith("\u2026")  # no room before link_down
    assert labels[1:] == ["link cut", "link up"]
    assert len(labels[0]) < len("power off, power on")
