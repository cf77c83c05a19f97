#!/usr/bin/env python3
"""Check an incident report with the standard tools of its format, for IncidentReportTests.

  validate_report.py stix FILE   parse with the stix2 library (strict: no custom objects or
                                 properties), print "OK stix TYPE=COUNT ..." and every pattern
  validate_report.py misp FILE   load with pymisp.MISPEvent, print "OK misp", the attribute types
                                 and the tags

Exits 1 with the library's message when the file is refused.
"""
import collections
import sys


def stix(path):
    import stix2
    text = open(path, encoding="utf-8").read()
    bundle = stix2.parse(text, allow_custom=False)
    counts = collections.Counter(o.type for o in bundle.objects)
    print("OK stix " + " ".join(f"{t}={n}" for t, n in sorted(counts.items())))
    for o in bundle.objects:
        if o.type == "indicator":
            print("PATTERN " + o.pattern)
            assert o.valid_until > o.valid_from, "valid_until must follow valid_from"
        if o.type == "sighting":
            print(f"SIGHTING {o.count}")
        if o.type == "report":
            ids = {x.id for x in bundle.objects}
            missing = [r for r in o.object_refs if r not in ids]
            assert not missing, f"report refers to objects not in the bundle: {missing}"


def misp(path):
    from pymisp import MISPEvent
    event = MISPEvent()
    event.load(open(path, encoding="utf-8").read())
    print("OK misp " + event.info[:80].replace("\n", " "))
    for a in event.attributes:
        print(f"ATTRIBUTE {a.type} {a.category} {a.value}")
    for t in event.tags:
        print(f"TAG {t.name}")


if __name__ == "__main__":
    try:
        {"stix": stix, "misp": misp}[sys.argv[1]](sys.argv[2])
    except Exception as e:  # the message is what the test shows
        print(f"REFUSED {type(e).__name__}: {e}")
        sys.exit(1)
