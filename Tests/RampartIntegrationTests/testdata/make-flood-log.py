#!/usr/bin/env python3
"""Writes flood-access.log (nginx combined): a minute of ordinary traffic, then an S2-style flood
(hundreds of sources, random query strings) with one heavy source, then calm again. Deterministic."""
import random
import time

random.seed(7)
start = 1782900000  # 2026-07-01T10:00:00Z
lines = []

def line(t, ip, method, path, status, agent):
    stamp = time.strftime("%d/%b/%Y:%H:%M:%S +0000", time.gmtime(t))
    return f'{ip} - - [{stamp}] "{method} {path} HTTP/1.1" {status} 512 "-" "{agent}"'

browser = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 Chrome/120.0 Safari/537.36"
for s in range(90):
    for _ in range(3):
        ip = f"192.0.2.{random.randint(1, 40)}"
        lines.append(line(start + s, ip, "GET", random.choice(["/", "/news", "/static/site.css", "/about"]), 200, browser))
    if 60 <= s < 68:
        for _ in range(400):
            ip = f"198.51.{random.randint(0, 99)}.{random.randint(1, 254)}"
            lines.append(line(start + s, ip, "GET", f"/?r={random.getrandbits(32)}", 200, "Mozilla/5.0 (flood)"))
        for _ in range(60):
            lines.append(line(start + s, "203.0.113.66", "GET", "/", 200, "python-requests/2.31"))
with open("flood-access.log", "w") as f:
    f.write("\n".join(lines) + "\n")
