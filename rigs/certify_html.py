"""report.html: the conformance run as one self-contained HTML file, drawn from summary.json alone.

No external resources and no JavaScript: the styles are inline and every scenario's timeline is an
inline SVG (power and energy over time, markers for the commands EvseManager made, the faults the rig
injected and the errors the driver raised and cleared, a legend and axis labels). Hovering a marker
shows its detail (an SVG <title>); every event is also listed in a table under the plot.

Because it needs nothing but summary.json, the report can be rebuilt from a certification bundle years
later (`meter-hil report BUNDLE`, docs/conformance.md).
"""

from __future__ import annotations

import argparse
import html
import itertools
import json
import math
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

# --- verdicts ----------------------------------------------------------------------------------------


def requirement_verdict(passed: int, failed: int, skipped: int) -> str:
    """One requirement's verdict: FAIL when a scenario of it failed, PASS when one passed and none
    failed, SKIPPED when all of its scenarios were skipped, NOT RUN when it has none."""
    if failed:
        return "FAIL"
    if passed:
        return "PASS"
    return "SKIPPED" if skipped else "NOT RUN"


def requirement_verdicts(summary: dict[str, Any]) -> dict[str, str]:
    """requirement id -> verdict, from summary.json (older summaries have no verdict field: computed)."""
    verdicts: dict[str, str] = {}
    for requirement, row in summary.get("requirements", {}).items():
        verdicts[requirement] = row.get("verdict") or requirement_verdict(
            int(row.get("passed", 0)), int(row.get("failed", 0)), int(row.get("skipped", 0)))
    return verdicts


# --- the plot ----------------------------------------------------------------------------------------

WIDTH, HEIGHT = 960, 336
LEFT, RIGHT, TOP, BOTTOM = 70, 890, 14, 194  # the plot area
LANES = {"command": 246, "fault": 268, "error": 290}
LANE_TITLES = {"command": "commands", "fault": "faults", "error": "errors"}
COLORS = {"power": "#1f6fb4", "energy": "#e07b00", "ok": "#218a3a", "bad": "#c62828", "fault": "#7a3ea1",
          "error": "#c62828", "band": "#f6caca", "grid": "#e4e4e4", "axis": "#444"}


def _e(text: Any) -> str:
    return html.escape(str(text), quote=True)


def _nice_step(span: float, count: int = 5) -> float:
    """A 1, 2 or 5 times a power of ten step giving about `count` ticks over `span`."""
    raw = max(span, 1e-9) / count
    power = 10 ** math.floor(math.log10(raw))
    for factor in (1, 2, 5, 10):
        if factor * power >= raw:
            return factor * power
    return 10 * power


def _ticks(low: float, high: float, count: int = 5) -> tuple[float, float, list[float]]:
    """A nice range covering [low, high] and its ticks."""
    if high <= low:
        high = low + 1.0
    step = _nice_step(high - low, count)
    start = math.floor(low / step) * step
    end = math.ceil(high / step) * step
    ticks = []
    value = start
    while value <= end + step / 2:
        ticks.append(round(value, 10))
        value += step
    return start, end, ticks


def _fmt(value: float) -> str:
    if abs(value - round(value)) < 1e-9:
        return f"{round(value):d}"
    return f"{value:.3g}" if abs(value) < 10 else f"{value:.1f}"


def command_label(command: dict[str, Any]) -> str:
    name = command.get("name", "?")
    tid = command.get("transaction_id", "")
    call = f'{name}("")' if name == "stop" and tid == "" else name
    return f"{call} {command.get('status', '?')}"


def fault_label(fault: dict[str, Any]) -> str:
    name = str(fault.get("name", "?"))
    if name == "load":
        watts = float(fault.get("power_w") or 0)
        return f"load {watts / 1000:g} kW" if watts >= 1000 else f"load {watts:g} W"
    if name == "link_noise":
        rate = float(fault.get("rate") or 0)
        return f"noise {rate:g}" if rate else "noise off"
    if name == "phase_order":
        return f"phases {fault.get('order', '?')}"
    if name == "link_down" and fault.get("on"):
        return "link cut (on stop)"
    return {"power_off": "power off", "power_on": "power on", "link_down": "link cut", "link_up": "link up",
            "link_cut_armed": "cut armed", "driver_started": "driver start",
            "driver_stopped": "driver stop"}.get(name, name)


def error_label(error: dict[str, Any]) -> str:
    return f"{error.get('type', '?')} {'raised' if error.get('raised') else 'cleared'}"


def _detail(kind: str, event: dict[str, Any]) -> str:
    """The full text of an event (tooltips and the event table)."""
    if kind == "command":
        text = f"{command_label(event)}, transaction id {event.get('transaction_id')!r}"
        if event.get("reason"):
            text += f", reason {event['reason']}"
        text += f", answered after {float(event.get('duration_s') or 0):.3f} s"
        return text + (f": {event['error']}" if event.get("error") else "")
    if kind == "fault":
        extra = {k: v for k, v in event.items() if k not in ("t", "name")}
        return fault_label(event) + (f" ({', '.join(f'{k}={v}' for k, v in extra.items())})" if extra else "")
    if kind == "error":
        return error_label(event) + (f": {event['message']}" if event.get("message") else "")
    return str(event)


INTERRUPTIONS = ("power_off", "link_down", "driver_stopped")
"""Faults after which nothing is known until the next reading: the line breaks there."""


def _segments(points: list[tuple[float, float]], gap: float,
              breaks: Sequence[float] = ()) -> list[list[tuple[float, float]]]:
    """Split a line where readings are missing for longer than `gap` seconds, and where an interruption
    (a power loss, a link cut, the driver stopped, an error raised) lies between two readings."""
    segments: list[list[tuple[float, float]]] = []
    for point in points:
        previous = segments[-1][-1][0] if segments else None
        if (previous is not None and point[0] - previous <= gap
                and not any(previous < t < point[0] for t in breaks)):
            segments[-1].append(point)
        else:
            segments.append([point])
    return segments


def _gap(times: list[float]) -> float:
    """How long readings may be apart before the line breaks: three times the usual (lower quartile)
    interval, at least half a second; a gap means the driver published nothing (a fault, a command)."""
    gaps = sorted(b - a for a, b in itertools.pairwise(times))
    usual = gaps[len(gaps) // 4] if gaps else 0.0
    return max(0.5, 3 * usual)


def timeline_svg(timeline: dict[str, Any], end: float = 0.0, label: str = "") -> str:
    """The inline SVG of one scenario's timeline (`end`: seconds the x axis covers at least)."""
    readings = timeline.get("readings", [])
    commands = timeline.get("commands", [])
    faults = timeline.get("faults", [])
    errors = timeline.get("errors", [])
    t_max = max([end, 1.0] + [float(e["t"]) for kind in (readings, commands, faults, errors) for e in kind])
    _, x_end, x_ticks = _ticks(0.0, t_max, 8)

    def x(t: float) -> float:
        return LEFT + (RIGHT - LEFT) * max(0.0, t) / x_end

    power = [(float(r["t"]), float(r["power_w"])) for r in readings if r.get("power_w") is not None]
    energy = [(float(r["t"]), float(r["energy_wh"])) for r in readings if r.get("energy_wh") is not None]
    kilo = max((abs(p) for _, p in power), default=0.0) >= 1000
    scale = 1000.0 if kilo else 1.0
    p_low, p_high, p_ticks = _ticks(min([0.0] + [p / scale for _, p in power]),
                                    max([1.0] + [p / scale for _, p in power]))
    e_values = [e for _, e in energy]
    e_low, e_high, e_ticks = _ticks(min(e_values, default=0.0), max(e_values, default=1.0))

    def y_power(value: float) -> float:
        return BOTTOM - (BOTTOM - TOP) * (value / scale - p_low) / (p_high - p_low)

    def y_energy(value: float) -> float:
        return BOTTOM - (BOTTOM - TOP) * (value - e_low) / (e_high - e_low)

    out = [f'<svg class="timeline" xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" '
           f'viewBox="0 0 {WIDTH} {HEIGHT}" role="img" aria-label="timeline {_e(label)}" '
           f'data-readings="{len(readings)}" data-commands="{len(commands)}" data-faults="{len(faults)}" '
           f'data-errors="{len(errors)}">',
           f'<title>Timeline: {_e(label)}</title>',
           f'<rect x="{LEFT}" y="{TOP}" width="{RIGHT - LEFT}" height="{BOTTOM - TOP}" fill="#fff" '
           f'stroke="{COLORS["axis"]}"/>']

    # Errors active: a band from raised to cleared (or to the end), per error type.
    active: dict[str, float] = {}
    bands: list[tuple[str, float, float]] = []
    for error in errors:
        kind = str(error.get("type"))
        if error.get("raised"):
            active.setdefault(kind, float(error["t"]))
        elif kind in active:
            bands.append((kind, active.pop(kind), float(error["t"])))
    bands += [(kind, began, t_max) for kind, began in active.items()]
    for kind, began, ended in bands:
        out.append(f'<rect class="error-band" x="{x(began):.1f}" y="{TOP}" '
                   f'width="{max(1.0, x(ended) - x(began)):.1f}" height="{BOTTOM - TOP}" '
                   f'fill="{COLORS["band"]}" opacity="0.6"><title>{_e(kind)} active '
                   f'{began:.2f} s to {ended:.2f} s</title></rect>')

    # Grid and axes.
    for tick in x_ticks:
        out.append(f'<line x1="{x(tick):.1f}" y1="{TOP}" x2="{x(tick):.1f}" y2="{BOTTOM}" '
                   f'stroke="{COLORS["grid"]}"/>')
        out.append(f'<text x="{x(tick):.1f}" y="{BOTTOM + 14}" text-anchor="middle" '
                   f'class="tick">{_fmt(tick)}</text>')
    for tick in p_ticks:
        y = BOTTOM - (BOTTOM - TOP) * (tick - p_low) / (p_high - p_low)
        out.append(f'<line x1="{LEFT}" y1="{y:.1f}" x2="{RIGHT}" y2="{y:.1f}" stroke="{COLORS["grid"]}"/>')
        out.append(f'<text x="{LEFT - 6}" y="{y + 4:.1f}" text-anchor="end" class="tick" '
                   f'fill="{COLORS["power"]}">{_fmt(tick)}</text>')
    for tick in e_ticks:
        y = y_energy(tick)
        out.append(f'<text x="{RIGHT + 6}" y="{y + 4:.1f}" text-anchor="start" class="tick" '
                   f'fill="{COLORS["energy"]}">{_fmt(tick)}</text>')
    middle = (TOP + BOTTOM) / 2
    out.append(f'<text class="axis-label" x="18" y="{middle}" text-anchor="middle" fill="{COLORS["power"]}" '
               f'transform="rotate(-90 18 {middle})">power total ({"kW" if kilo else "W"})</text>')
    out.append(f'<text class="axis-label" x="{WIDTH - 14}" y="{middle}" text-anchor="middle" '
               f'fill="{COLORS["energy"]}" transform="rotate(90 {WIDTH - 14} {middle})">'
               f'energy import (Wh)</text>')
    out.append(f'<text class="axis-label" x="{(LEFT + RIGHT) / 2}" y="{BOTTOM + 30}" text-anchor="middle">'
               f'time since the scenario began (s)</text>')

    # Vertical guides for faults and commands, through the plot.
    for fault in faults:
        out.append(f'<line class="fault-guide" x1="{x(float(fault["t"])):.1f}" y1="{TOP}" '
                   f'x2="{x(float(fault["t"])):.1f}" y2="{LANES["fault"]}" stroke="{COLORS["fault"]}" '
                   f'stroke-dasharray="4 3" opacity="0.7"/>')
    for command in commands:
        color = COLORS["ok"] if command.get("status") == "OK" else COLORS["bad"]
        out.append(f'<line class="command-guide" x1="{x(float(command["t"])):.1f}" y1="{TOP}" '
                   f'x2="{x(float(command["t"])):.1f}" y2="{LANES["command"]}" stroke="{color}" '
                   f'stroke-dasharray="1 3" opacity="0.8"/>')

    # The lines, broken where readings are missing, and a dot a reading.
    gap = _gap([float(r["t"]) for r in readings])
    breaks = [float(f["t"]) for f in faults if f.get("name") in INTERRUPTIONS]
    breaks += [float(e["t"]) for e in errors if e.get("raised")]
    dots = len(readings) <= 400
    for name, points, to_y in (("power", power, lambda v: y_power(v)), ("energy", energy, y_energy)):
        for segment in _segments(points, gap, breaks):
            coordinates = " ".join(f"{x(t):.1f},{to_y(v):.1f}" for t, v in segment)
            out.append(f'<polyline class="{name}" data-points="{len(segment)}" points="{coordinates}" '
                       f'fill="none" stroke="{COLORS[name]}" stroke-width="2"/>')
            if dots:
                radius = 3.2 if len(segment) == 1 else 2.2  # a reading alone shows as a bigger dot
                out.extend(f'<circle class="{name}-point" cx="{x(t):.1f}" cy="{to_y(v):.1f}" r="{radius}" '
                           f'fill="{COLORS[name]}"/>' for t, v in segment)

    # The event lanes.
    for kind, y in LANES.items():
        out.append(f'<text class="lane" x="{LEFT - 6}" y="{y + 4}" text-anchor="end">'
                   f'{LANE_TITLES[kind]}</text>')
        out.append(f'<line x1="{LEFT}" y1="{y}" x2="{RIGHT}" y2="{y}" stroke="{COLORS["grid"]}"/>')
    for command in commands:
        px, y = x(float(command["t"])), LANES["command"]
        color = COLORS["ok"] if command.get("status") == "OK" else COLORS["bad"]
        out.append(f'<path class="marker command" d="M{px - 5:.1f},{y - 5} L{px + 5:.1f},{y - 5} '
                   f'L{px:.1f},{y + 5} Z" fill="{color}"><title>{float(command["t"]):.2f} s: '
                   f'{_e(_detail("command", command))}</title></path>')
    for fault in faults:
        px, y = x(float(fault["t"])), LANES["fault"]
        out.append(f'<path class="marker fault" d="M{px:.1f},{y - 6} L{px + 5:.1f},{y} L{px:.1f},{y + 6} '
                   f'L{px - 5:.1f},{y} Z" fill="{COLORS["fault"]}"><title>{float(fault["t"]):.2f} s: '
                   f'{_e(_detail("fault", fault))}</title></path>')
    for error in errors:
        px, y = x(float(error["t"])), LANES["error"]
        tooltip = f'<title>{float(error["t"]):.2f} s: {_e(_detail("error", error))}</title>'
        if error.get("raised"):
            out.append(f'<path class="marker error-raised" d="M{px - 5:.1f},{y - 5} L{px + 5:.1f},{y + 5} '
                       f'M{px - 5:.1f},{y + 5} L{px + 5:.1f},{y - 5}" stroke="{COLORS["error"]}" '
                       f'stroke-width="2.5">{tooltip}</path>')
        else:
            out.append(f'<circle class="marker error-cleared" cx="{px:.1f}" cy="{y}" r="5" fill="#fff" '
                       f'stroke="{COLORS["error"]}" stroke-width="2">{tooltip}</circle>')

    out += _lane_labels("command", [(x(float(c["t"])), command_label(c)) for c in commands],
                        [COLORS["ok"] if c.get("status") == "OK" else COLORS["bad"] for c in commands])
    out += _lane_labels("fault", [(x(float(f["t"])), fault_label(f)) for f in faults],
                        [COLORS["fault"]] * len(faults))
    out += _lane_labels("error", [(x(float(e["t"])), error_label(e)) for e in errors],
                        [COLORS["error"]] * len(errors))
    out.append(_legend(HEIGHT - 12))
    out.append("</svg>")
    return "\n".join(part for part in out if part)


CHAR_WIDTH = 5.6  # px of a 10 px sans-serif character, near enough


def _lane_labels(kind: str, marks: list[tuple[float, str]], colors: list[str]) -> list[str]:
    """Labels of one lane's markers: markers closer than 8 px share one label ("a, b"); a label is cut
    short ("...") where it would run into the next marker, and left out when there is no room at all.
    The markers' tooltips and the event table below the plot hold every event in full."""
    order = sorted(range(len(marks)), key=lambda i: marks[i][0])
    groups: list[list[int]] = []
    for index in order:
        if groups and marks[index][0] - marks[groups[-1][0]][0] < 8:
            groups[-1].append(index)
        else:
            groups.append([index])
    out = []
    for number, group in enumerate(groups):
        px = marks[group[0]][0]
        limit = marks[groups[number + 1][0]][0] - 8 if number + 1 < len(groups) else WIDTH - 4
        room = int((limit - px - 9) / CHAR_WIDTH)
        names: list[str] = []
        for index in group:  # the same label twice in a cluster (two stops) is said once
            if marks[index][1] not in names:
                names.append(marks[index][1])
        text = ", ".join(names)
        if len(text) > room:
            text = text[:room - 1].rstrip(", ") + "\u2026" if room >= 5 else ""
        if text:
            out.append(f'<text class="marker-label" x="{px + 8:.1f}" y="{LANES[kind] + 4}" '
                       f'fill="{colors[group[0]]}">{_e(text)}</text>')
    return out


def _legend(y: int) -> str:
    items = [
        f'<line x1="0" y1="0" x2="22" y2="0" stroke="{COLORS["power"]}" stroke-width="2"/>', "power total",
        f'<line x1="0" y1="0" x2="22" y2="0" stroke="{COLORS["energy"]}" stroke-width="2"/>', "energy import",
        f'<path d="M6,-5 L16,-5 L11,5 Z" fill="{COLORS["ok"]}"/>', "command OK",
        f'<path d="M6,-5 L16,-5 L11,5 Z" fill="{COLORS["bad"]}"/>', "command not OK",
        f'<path d="M11,-6 L16,0 L11,6 L6,0 Z" fill="{COLORS["fault"]}"/>', "fault injected",
        f'<path d="M6,-5 L16,5 M6,5 L16,-5" stroke="{COLORS["error"]}" stroke-width="2.5"/>', "error raised",
        f'<circle cx="11" cy="0" r="5" fill="#fff" stroke="{COLORS["error"]}" stroke-width="2"/>',
        "error cleared",
        f'<rect x="0" y="-6" width="22" height="12" fill="{COLORS["band"]}"/>', "error active",
    ]
    parts = [f'<g class="legend" transform="translate({LEFT - 60},{y})">']
    offset = 0
    for symbol, text in zip(items[::2], items[1::2], strict=True):
        parts.append(f'<g transform="translate({offset},0)">{symbol}<text x="27" y="4">{_e(text)}</text></g>')
        offset += 32 + int(6.2 * len(text)) + 10
    parts.append("</g>")
    return "".join(parts)


# --- the page ----------------------------------------------------------------------------------------

STYLE = """
body { font-family: sans-serif; margin: 24px; color: #222; max-width: 1000px; }
h1 { font-size: 22px; }
h2 { font-size: 18px; margin-top: 36px; border-top: 1px solid #ccc; padding-top: 12px; }
table { border-collapse: collapse; margin: 8px 0 16px; font-size: 13px; }
th, td { border: 1px solid #ccc; padding: 3px 8px; text-align: left; vertical-align: top; }
th { background: #f3f3f3; }
td.num { text-align: right; }
.v { font-weight: bold; padding: 1px 6px; border-radius: 3px; color: #fff; }
.v-PASS, .v-passed { background: #218a3a; } .v-FAIL, .v-failed, .v-undefined { background: #c62828; }
.v-INCOMPLETE { background: #d77a00; } .v-SKIPPED, .v-skipped, .v-NOT-RUN, .v-not-run { background: #888; }
.mono { font-family: monospace; font-size: 12px; word-break: break-all; }
.tag { display: inline-block; background: #eef; border: 1px solid #ccd; border-radius: 3px; padding: 0 4px;
       margin: 1px; font-size: 12px; }
.tag.req { background: #e6f2e6; border-color: #b9d8b9; font-weight: bold; }
svg.timeline { border: 1px solid #ddd; background: #fafafa; }
svg text { font-family: sans-serif; font-size: 11px; }
svg text.tick { font-size: 10px; } svg text.axis-label { font-size: 11px; font-weight: bold; }
svg text.lane { font-size: 10px; fill: #555; } svg text.marker-label { font-size: 10px; }
.reason { color: #a00; }
"""


def _badge(verdict: str) -> str:
    return f'<span class="v v-{_e(verdict.replace(" ", "-"))}">{_e(verdict)}</span>'


def _verdict_of(outcome: str) -> str:
    return {"passed": "PASS", "failed": "FAIL", "skipped": "SKIPPED"}.get(outcome, outcome.upper())


def _run_table(summary: dict[str, Any], bundle: dict[str, Any] | None) -> str:
    run = summary.get("run", {})
    rows = [
        ("rig", run.get("rig_name", "?")),
        ("rig file", Path(str(run.get("rig_file", "?"))).name),
        ("rig file sha256", run.get("rig_sha256", "?")),
        ("meter model", run.get("model", "?")),
        ("driver class", run.get("driver_class", "?")),
        ("capabilities", ", ".join(run.get("capabilities", [])) or "none"),
        ("identity seed", run.get("seed", "?")),
        ("run started (UTC)", run.get("started_utc", "?")),
    ]
    if bundle:
        rows += [(f"bundle {key}", value) for key, value in bundle.items()]
    cells = "".join(f'<tr><th>{_e(k)}</th><td class="mono">{_e(v)}</td></tr>' for k, v in rows)
    versions = "".join(f'<tr><th>{_e(k)}</th><td class="mono">{_e(v)}</td></tr>'
                       for k, v in run.get("versions", {}).items())
    return (f'<table class="run">{cells}</table><h3>Versions</h3><table class="versions">{versions}</table>')


def _requirement_table(summary: dict[str, Any]) -> str:
    verdicts = requirement_verdicts(summary)
    rows = []
    for requirement, row in summary.get("requirements", {}).items():
        rows.append(f'<tr><td>{_e(requirement)}</td><td>{_badge(verdicts[requirement])}</td>'
                    f'<td class="num">{row.get("passed", 0)}</td><td class="num">{row.get("failed", 0)}</td>'
                    f'<td class="num">{row.get("skipped", 0)}</td></tr>')
    return ('<table class="requirements"><tr><th>requirement</th><th>verdict</th><th>passed</th>'
            f'<th>failed</th><th>skipped</th></tr>{"".join(rows)}</table>')


def _tags(scenario: dict[str, Any]) -> str:
    requirements = scenario.get("requirements", [])
    others = [t for t in scenario.get("tags", []) if t not in requirements]
    return ("".join(f'<span class="tag req">@{_e(t)}</span>' for t in requirements)
            + "".join(f'<span class="tag">@{_e(t)}</span>' for t in others))


def _steps_table(steps: list[dict[str, Any]]) -> str:
    if not steps:
        return "<p>No steps ran.</p>"
    rows = []
    for number, step in enumerate(steps, 1):
        t = f'{step["t"]:.2f}' if "t" in step else ""
        duration = f'{step["duration_s"]:.2f}' if "duration_s" in step else ""
        error = f'<div class="reason">{_e(step["error"])}</div>' if step.get("error") else ""
        rows.append(f'<tr><td class="num">{number}</td><td><b>{_e(step.get("keyword", ""))}</b> '
                    f'{_e(step.get("name", ""))}{error}</td><td>{_badge(str(step.get("outcome", "?")))}</td>'
                    f'<td class="num">{t}</td><td class="num">{duration}</td></tr>')
    return ('<table class="steps"><tr><th>#</th><th>step</th><th>outcome</th><th>at (s)</th>'
            f'<th>took (s)</th></tr>{"".join(rows)}</table>')


def _events_table(timeline: dict[str, Any]) -> str:
    events = [(float(e["t"]), kind, _detail(kind, e)) for kind in ("command", "fault", "error")
              for e in timeline.get(kind + "s", [])]
    readings = timeline.get("readings", [])
    rows = "".join(f'<tr><td class="num">{t:.3f}</td><td>{_e(kind)}</td><td>{_e(text)}</td></tr>'
                   for t, kind, text in sorted(events, key=lambda e: e[0]))
    first = readings[0] if readings else None
    last = readings[-1] if readings else None
    span = (f"{len(readings)} readings from {first['t']:.2f} s to {last['t']:.2f} s; last: "
            f"power {last.get('power_w')} W, energy {last.get('energy_wh')} Wh" if first and last
            else "no readings")
    dropped = timeline.get("readings_dropped", 0)
    span += f" ({dropped} more not kept)" if dropped else ""
    return (f'<details><summary>{len(events)} events; {_e(span)}</summary>'
            f'<table class="events"><tr><th>at (s)</th><th>kind</th><th>what</th></tr>{rows}</table>'
            '</details>')


def _scenario_section(number: int, scenario: dict[str, Any]) -> str:
    verdict = _verdict_of(str(scenario.get("outcome", "?")))
    reason = (f'<p class="reason">{_e(scenario["reason"])}</p>'
              if scenario.get("reason") and scenario.get("outcome") != "passed" else "")
    steps = scenario.get("steps", [])
    timeline = scenario.get("timeline")
    if timeline:
        end = max([0.0] + [float(s["t"]) + float(s.get("duration_s", 0)) for s in steps if "t" in s])
        plot = timeline_svg(timeline, end, str(scenario.get("name", ""))) + _events_table(timeline)
    else:
        plot = '<p class="no-timeline">No timeline: no rig ran for this scenario.</p>'
    return (f'<section class="scenario" id="s{number}" data-outcome="{_e(scenario.get("outcome", ""))}">'
            f'<h2>{number}. {_e(scenario.get("name", "?"))} {_badge(verdict)}</h2>'
            f'<p>Feature: {_e(scenario.get("feature", "?"))}; {float(scenario.get("duration_s", 0)):.1f} s; '
            f'<span class="mono">{_e(scenario.get("nodeid", ""))}</span></p>'
            f'<p>{_tags(scenario)}</p>{reason}{_steps_table(steps)}{plot}</section>')


def render(summary: dict[str, Any], bundle: dict[str, Any] | None = None) -> str:
    """report.html from a summary.json's content (`bundle`: extra lines for the run table)."""
    run = summary.get("run", {})
    verdict = str(summary.get("verdict", "?"))
    scenarios = summary.get("scenarios", [])
    index = "".join(
        f'<tr><td class="num">{n}</td><td><a href="#s{n}">{_e(s.get("name", "?"))}</a></td>'
        f'<td>{_e(" ".join(s.get("requirements", [])))}</td><td>{_badge(_verdict_of(str(s.get("outcome"))))}'
        f'</td><td class="num">{float(s.get("duration_s", 0)):.1f}</td></tr>'
        for n, s in enumerate(scenarios, 1))
    sections = "".join(_scenario_section(n, s) for n, s in enumerate(scenarios, 1))
    title = f"Conformance report: {run.get('rig_name', '?')} ({run.get('model', '?')})"
    return (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>{_e(title)}</title>'
            f'<style>{STYLE}</style></head><body>'
            f'<h1>{_e(title)}</h1><p class="verdict">Verdict: {_badge(verdict)}</p>'
            f'<h3>Verdict by requirement</h3>{_requirement_table(summary)}'
            f'<h3>Run</h3>{_run_table(summary, bundle)}'
            f'<h3>Scenarios</h3><table class="index"><tr><th>#</th><th>scenario</th><th>requirements</th>'
            f'<th>verdict</th><th>s</th></tr>{index}</table>{sections}'
            '<p><small>Made by meter-hil from summary.json (rigs/certify_html.py).</small></p>'
            '</body></html>\n')


def write_report(summary_path: Path, out: Path, bundle: dict[str, Any] | None = None) -> Path:
    summary = json.loads(summary_path.read_text(encoding="utf-8"))
    out.write_text(render(summary, bundle), encoding="utf-8")
    return out


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m rigs.certify_html",
                                     description="Write report.html from a conformance run's summary.json.")
    parser.add_argument("summary", type=Path, help="summary.json of a run")
    parser.add_argument("-o", "--output", type=Path, default=None, help="default: report.html beside it")
    args = parser.parse_args(argv)
    try:
        out = write_report(args.summary, args.output or args.summary.with_name("report.html"))
    except (OSError, ValueError) as exc:
        print(f"error: {args.summary}: {exc}", file=sys.stderr)
        return 2
    print(out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
