"""The dashboard's SVG charts: values in, SVG out — well-formed, named in words for screen readers, every label
escaped, gaps where a value is None, something sensible for no data at all."""

from __future__ import annotations

import xml.etree.ElementTree as ET

from markupsafe import Markup

from shipyard.api.dashboard.charts import COLOURS, colour, line_chart, nice_ceiling, number, sparkline

SVG = "{http://www.w3.org/2000/svg}"
T0 = 1_800_000_000 - 1_800_000_000 % 3600  # 2027-01-15 08:00 UTC


def parse(svg: str) -> ET.Element:
    root = ET.fromstring(svg)
    assert root.tag == f"{SVG}svg" and root.get("role") == "img"
    assert root.findtext(f"{SVG}title") == root.get("aria-label")  # one name, for screen readers and tooltips
    return root


def texts(root: ET.Element) -> list[str]:
    return [t.text or "" for t in root.iter(f"{SVG}text")]


def lines(root: ET.Element, stroke: str | None = None) -> list[ET.Element]:
    return [p for p in root.iter(f"{SVG}path") if stroke is None or p.get("stroke") == stroke]


def test_a_sparkline_says_its_peak_and_total() -> None:
    svg = sparkline([0, 3, 12, 5, 0], label="shop: requests per minute, last hour")
    assert isinstance(svg, Markup)  # a template puts it in as it is
    root = parse(svg)
    assert root.get("aria-label") == "shop: requests per minute, last hour: peak 12, total 20"
    assert (root.get("width"), root.get("height")) == ("120", "24")
    [path] = lines(root)
    assert path.get("d", "").count("L") == 4


def test_a_sparkline_of_nothing_or_only_gaps_says_so() -> None:
    assert parse(sparkline([])).get("aria-label") == "Requests per minute: no data"
    root = parse(sparkline([None, None]))
    assert root.get("aria-label") == "Requests per minute: no data" and lines(root) == []
    assert parse(sparkline([0] * 60)).get("aria-label") == "Requests per minute: peak 0, total 0"


def test_every_label_is_escaped() -> None:
    evil = '<script>alert("x")</script> & \'quotes\''
    svg = line_chart([T0, T0 + 60], {evil: [1.0, 2.0]}, unit="<b>", title=evil, summary=evil)
    assert "<script>" not in svg and "<b>" not in svg
    root = parse(svg)
    assert root.get("aria-label") == f"{evil}: peak 2 <b>, {evil}"
    assert evil in texts(root) and "2 <b>" in texts(root)
    assert "<script>" not in sparkline([1], label=evil) and parse(sparkline([1], label=evil)).get("aria-label", "") \
        .startswith(evil)


def test_a_line_chart_names_its_figures_in_words() -> None:
    times = [T0 + i * 60 for i in range(60)]
    root = parse(line_chart(times, {"requests/s": [0.5] * 59 + [3.2]}, unit="req/s",
                            title="Requests per second, last hour", summary="total 412 requests"))
    assert root.get("aria-label") == "Requests per second, last hour: peak 3.2 req/s, total 412 requests"
    several = parse(line_chart(times[:2], {"2xx": [1, 2], "5xx": [0, 0.25], "4xx": [None, None]}, unit="req/s",
                               title="Responses"))
    assert several.get("aria-label") == "Responses: 2xx peak 2 req/s, 5xx peak 0.25 req/s, 4xx no data"


def test_the_axes_show_a_round_maximum_and_the_start_and_end_times_in_utc() -> None:
    hour = parse(line_chart([T0, T0 + 3540], {"p95": [120.0, 80.0]}, unit="ms", title="Latency"))
    assert {"200 ms", "0", "08:00", "08:59 UTC"} <= set(texts(hour))
    day = parse(line_chart([T0, T0 + 86100], {"p95": [1.0, 2.0]}, unit="ms", title="Latency"))
    assert {"15 Jan 08:00", "16 Jan 07:55 UTC"} <= set(texts(day))
    week = parse(line_chart([T0 + h * 3600 for h in range(168)], {"instances": [2.0] * 168}, unit="", title="Web"))
    assert {"2", "15 Jan", "22 Jan UTC"} <= set(texts(week))


def test_none_is_a_gap_and_a_lone_value_a_dot() -> None:
    times = [T0 + i * 60 for i in range(7)]
    root = parse(line_chart(times, {"web.1": [0.1, 0.2, None, 0.3, None, 0.1, 0.2]}, unit="cores", title="CPU"))
    assert len(lines(root, colour("web.1"))) == 2  # [0.1, 0.2] and [0.1, 0.2]; the 0.3 alone is a dot
    assert len([c for c in root.iter(f"{SVG}circle") if c.get("fill") == colour("web.1")]) == 1


def test_an_empty_chart_says_no_data() -> None:
    for svg in (line_chart([], {}, unit="req/s", title="Requests"),
                line_chart([], {"2xx": []}, unit="req/s", title="Requests"),
                line_chart([T0, T0 + 60], {"p50": [None, None]}, unit="ms", title="Requests")):
        root = parse(svg)
        assert "no data" in root.get("aria-label", "") and lines(root) == []
    assert "No data" in texts(parse(line_chart([], {}, unit="req/s", title="Requests")))
    one = parse(line_chart([T0], {"requests/s": [2.0]}, unit="req/s", title="Requests"))  # one point: a dot
    assert len(list(one.iter(f"{SVG}circle"))) == 1


def test_series_have_fixed_colours_and_a_legend() -> None:
    assert COLOURS["2xx"] == "#15803d" and COLOURS["5xx"] == "#b91c1c" and COLOURS["4xx"] == "#b45309"
    assert colour("web.3") == colour("web.3") and colour("web.3") in __import__("shipyard.api.dashboard.charts",
                                                                                 fromlist=["PALETTE"]).PALETTE
    assert len({colour(f"web.{i}") for i in range(1, 11)}) == 10  # ten instances, ten colours
    names = [f"web.{i}" for i in range(1, 13)]
    root = parse(line_chart([T0, T0 + 60], {n: [1.0, 2.0] for n in names}, unit="MiB", title="Memory"))
    assert [t for t in texts(root) if t.startswith("web.")] == names
    swatches = {r.get("fill") for r in root.iter(f"{SVG}rect")}
    assert swatches <= {colour(n) for n in names}
    assert int(root.get("height", "0")) == 180 and len({r.get("y") for r in root.iter(f"{SVG}rect")}) >= 2  # wrapped


def test_figures_read_as_people_write_them() -> None:
    assert [number(v) for v in (0, 3.2, 3.25, 12.5, 412, 0.0123, 1234.5, 15000, 52428800, 2.5e9)] == \
        ["0", "3.2", "3.25", "12.5", "412", "0.0123", "1234", "15k", "52.4M", "2.5G"]
    assert [nice_ceiling(v) for v in (0, 0.3, 1, 3.2, 7, 12, 2000)] == [1, 0.5, 1, 5, 10, 20, 2000]
