"""A strict reader of Prometheus's text format (0.0.4) for the ``/metrics`` tests.

It holds the exposition to the format's rules rather than accepting what a lenient
scraper would: ``# HELP`` then ``# TYPE`` once per family, then only that family's
samples, each series once, every value a float; a histogram's buckets ascending,
cumulative, ending with ``+Inf`` equal to its ``_count``, with a ``_sum``.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field

_SAMPLE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$")
_LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"(?:,|$)')
_KINDS = ("counter", "gauge", "histogram")
_HISTOGRAM_SUFFIXES = ("_bucket", "_sum", "_count")

Labels = frozenset[tuple[str, str]]


@dataclass
class Scrape:
    """What one scrape said: each family's type, and every sample by (name, labels)."""

    kinds: dict[str, str] = field(default_factory=dict)
    samples: dict[tuple[str, Labels], float] = field(default_factory=dict)

    def value(self, name: str, **labels: str) -> float:
        return self.samples[(name, frozenset(labels.items()))]

    def histogram(self, name: str, **labels: str) -> tuple[list[tuple[float, float]], float, float]:
        """(cumulative buckets as (le, count), sum, count) of one series, checked."""
        assert self.kinds[name] == "histogram", name
        want = frozenset(labels.items())
        buckets = sorted(
            (float(dict(key)["le"]), value)
            for (sample, key), value in self.samples.items()
            if sample == f"{name}_bucket" and key - {("le", dict(key)["le"])} == want
        )
        count = self.value(f"{name}_count", **labels)
        assert buckets and buckets[-1][0] == math.inf, buckets
        assert buckets[-1][1] == count, (buckets, count)
        counts = [n for _, n in buckets]
        assert counts == sorted(counts), f"buckets of {name} are not cumulative: {buckets}"
        return buckets, self.value(f"{name}_sum", **labels), count


def parse(text: str) -> Scrape:
    """Read ``text``, asserting the rules in the module docstring."""
    assert text.endswith("\n")
    scrape = Scrape()
    family = ""
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        help_line, type_line = lines[i : i + 2]
        family = help_line.split(" ")[2]
        assert help_line.startswith(f"# HELP {family} "), help_line
        kind = type_line.removeprefix(f"# TYPE {family} ")
        assert kind in _KINDS, type_line
        assert family not in scrape.kinds, f"{family} described twice"
        scrape.kinds[family] = kind
        i += 2
        while i < len(lines) and not lines[i].startswith("#"):
            _add_sample(scrape, family, kind, lines[i])
            i += 1
    for name in scrape.kinds:
        if scrape.kinds[name] == "histogram":
            for key in {k for (n, k) in scrape.samples if n == f"{name}_count"}:
                scrape.histogram(name, **dict(key))
    return scrape


def _add_sample(scrape: Scrape, family: str, kind: str, line: str) -> None:
    match = _SAMPLE.match(line)
    assert match is not None, line
    name, labels_text, value = match[1], match[2] or "", match[3]
    allowed = [family + s for s in _HISTOGRAM_SUFFIXES] if kind == "histogram" else [family]
    assert name in allowed, f"{line!r} is not a sample of {family}"
    labels = _labels(labels_text)
    assert (name == f"{family}_bucket") == ("le" in dict(labels)), line
    key = (name, labels)
    assert key not in scrape.samples, f"{line!r} repeats a series"
    scrape.samples[key] = float(value)


def _labels(text: str) -> Labels:
    pairs = _LABEL.findall(text)
    assert "".join(f'{k}="{v}",' for k, v in pairs).rstrip(",") == text, text
    return frozenset(pairs)
