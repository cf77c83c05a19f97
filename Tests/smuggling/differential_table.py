#!/usr/bin/env python3
"""Writes the differential table (bench/differential.sh) into docs/differential.md.

usage: differential_table.py --doc FILE PEER=ONE_SITE.json,TWO_SITE.json=VERSION ...

The table replaces what stands between the `<!-- table:begin -->` and `<!-- table:end -->`
markers; the text around them (the analysis) is kept. A missing doc is created with the markers.
"""
import argparse
import json
import os
import re
import sys
import time

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import corpus  # noqa: E402

BEGIN, END = "<!-- table:begin -->", "<!-- table:end -->"
NAMES = {"rampart-before": "Rampart before", "rampart": "Rampart", "nginx": "nginx", "haproxy": "HAProxy"}


def cell(result):
    if result is None:
        return "not run"
    text = result["outcome"] or "?"
    if not result["pass"] and result["problems"] and text.startswith("forwarded differently"):
        text += " — " + "; ".join(result["problems"])
    # The per-run path prefix says nothing to a reader.
    text = re.sub(r"/c-%s-[0-9a-f]+" % re.escape(result["id"]), "/{p}", text)
    if len(text) > 240:
        text = text[:237] + "..."
    text = text.replace("|", "\\|").replace("\r", "\\r").replace("\n", "\\n")
    return ("ok: " if result["pass"] else "**differs**: ") + text


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--doc", required=True)
    ap.add_argument("peers", nargs="+")
    args = ap.parse_args()
    peers = []
    for spec in args.peers:
        name, files, version = spec.split("=", 2)
        results = {}
        for f in files.split(","):
            try:
                with open(f) as fh:
                    doc = json.load(fh)
            except (OSError, ValueError):
                continue
            for r in doc["cases"]:
                results[r["id"]] = r
        peers.append((name, version, results))
    lines = [BEGIN, "",
             "Run %s on %d cores. Versions:" % (time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), os.cpu_count() or 0), ""]
    for name, version, results in peers:
        passed = sum(1 for r in results.values() if r["pass"])
        lines.append("- %s: %s; %d of %d cases as the corpus expects" % (NAMES.get(name, name), version, passed, len(results)))
    lines += ["",
              "`ok` = the origin received what the corpus expects (or nothing, for `refused`); `differs` = "
              "it did not, with what the client and origin saw (`{p}` stands for the case's own path prefix). Expectations are Rampart's target behaviour "
              "(issue 12), so `differs` in a peer's column is a difference, not always a vulnerability: see "
              "the analysis.", "",
              "| case | proto | expectation | what is sent | %s |" % " | ".join(NAMES.get(n, n) for n, _, _ in peers),
              "|---|---|---|---|%s" % "---|" * len(peers)]
    for case in corpus.CASES:
        if not any(case["id"] in r for _, _, r in peers):
            continue
        what = case["what"].replace("|", "\\|")
        row = "| `%s` | %s | %s | %s | %s |" % (case["id"], case["proto"], case["expect"], what,
                                              " | ".join(cell(r.get(case["id"])) for _, _, r in peers))
        lines.append(row)
    lines += ["", END]
    table = "\n".join(lines)
    try:
        with open(args.doc) as fh:
            text = fh.read()
    except OSError:
        text = "# Differential smuggling check\n\n%s\n%s\n" % (BEGIN, END)
    if BEGIN not in text or END not in text:
        text += "\n%s\n%s\n" % (BEGIN, END)
    before, rest = text.split(BEGIN, 1)
    _, after = rest.split(END, 1)
    with open(args.doc, "w") as fh:
        fh.write(before + table + after)


if __name__ == "__main__":
    main()
