"""Sum up a CHAOS_RECORD file: schedules run, faults injected, violations by invariant and by known failure.

    python -m tests.chaos.summarize chaos.jsonl

The failure labels name the reproduced failures the chaos simulation was built to catch; a violation
that matches none is listed as "other", and is a new finding.
"""

from __future__ import annotations

import json
import re
import sys
from collections import Counter, defaultdict
from pathlib import Path

F1 = "1 poison row stops the queue"
F2 = "2 leases judged by the wrong clock and setting"
F3 = "3 a TLS error after sending counts as not sent"
F4 = "4 a put-back row forgets it may have arrived"
F5 = "5 cancel deletes, and everything is resent"
F6 = "6 two recipients of one constituent share a key"
F7 = "7 an outage burns attempts"
F8 = "8 no overall deadline per request"
F9 = "9 database error aborts the cycle"
F10 = "10 a crashing row loops for ever"
STALL = "rows left unfinished (follows from 1, 8 or 9)"

#: (label, invariant, pattern): the first that matches a violation's text names it.
KNOWN = (
    (F1, "I5", re.compile(r"control character|UnicodeEncodeError|latin-1|quote_literal")),
    (
        F9,
        "I5",
        re.compile(r"lost a cycle to a database error|OperationalError|database is locked|terminating"),
    ),
    (F8, "I5", re.compile(r"ignored SIGTERM|had a cycle of")),
    (F7, "I3", re.compile(r"being unavailable")),
    (F10, "I3", re.compile(r"interrupted \d+ times in a row")),
    (F4, "I3", re.compile(r"received \d+ Saves, the history records")),
    (F6, "I1", re.compile(r"is Sent but constituent .* of \d+")),
    (F5, "I1", re.compile(r"mailing \d+: constituent .* activities for")),
    (F5, "I1", re.compile(r"writebacks the queue was given are gone")),
    (F5, "I4", re.compile(r"audit entry")),
    (F3, "I1", re.compile(r"written \d+ times.*secure connection")),
    (F2, "I1", re.compile(r"written \d+ times")),
    (STALL, "I2", re.compile(r"left (Processing|New|Error)")),
)


def label(violation: str) -> str:
    invariant, _, text = violation.partition(": ")
    for name, inv, pattern in KNOWN:
        if inv == invariant and pattern.search(text):
            return name
    return f"other ({invariant})"


def summarize(path: Path) -> str:
    records = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    faults: Counter[str] = Counter()
    by_invariant: Counter[str] = Counter()
    by_failure: dict[str, list[str]] = defaultdict(list)
    failing = 0
    for r in records:
        faults.update(r["faults"])
        seen_here: set[str] = set()
        for v in r["violations"]:
            by_invariant[v.split(":", 1)[0]] += 1
            name = label(v)
            if name not in seen_here:
                by_failure[name].append(f"{r['seed']}/{r['backend']}")
                seen_here.add(name)
        failing += bool(r["violations"])
    lines = [
        f"schedules: {len(records)} ({failing} with violations)",
        "faults injected: " + ", ".join(f"{k} {v}" for k, v in sorted(faults.items())),
        "violations by invariant: "
        + (", ".join(f"{k} {v}" for k, v in sorted(by_invariant.items())) or "none"),
    ]
    for name in sorted(by_failure, key=lambda n: (len(n.split()[0]), n)):
        seeds = by_failure[name]
        lines.append(f"  {name}: {len(seeds)} schedules, e.g. seed {', '.join(seeds[:4])}")
    return "\n".join(lines)


if __name__ == "__main__":
    print(summarize(Path(sys.argv[1])))
