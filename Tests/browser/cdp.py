#!/usr/bin/env python3
"""Drive Debian's headless chromium over the DevTools protocol (pipe transport: no extra
packages) for Rampart's browser tests.

  cdp.py URL [--no-js] [--wait-for TEXT]... [--timeout S] [--screenshot PNG]
         [--eval JS]... [--then-wait-for TEXT]...

Opens URL in a fresh profile, waits until every --wait-for text is in the page's HTML (following
redirects, meta refreshes and script navigations as the browser does), runs each --eval script in
the page, waits for every --then-wait-for text, saves a screenshot, prints the final URL and HTML
and exits 0; exits 1 (printing what it saw) when the timeout passes first.
"""
import argparse
import base64
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time


class Browser:
    def __init__(self, no_js):
        self.profile = tempfile.mkdtemp(prefix="rampart-chromium-")
        exe = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
        if not exe:
            print("chromium is not installed (apt-get install chromium)", file=sys.stderr)
            sys.exit(2)
        to_browser_r, self.to_browser = os.pipe()
        self.from_browser, from_browser_w = os.pipe()
        args = [exe, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
                "--remote-debugging-pipe", f"--user-data-dir={self.profile}", "--window-size=1280,900"]
        # chromium reads commands on fd 3 and writes replies on fd 4; the shell puts the pipes there.
        script = 'exec "$@" 3<&%d 4>&%d' % (to_browser_r, from_browser_w)
        self.proc = subprocess.Popen(["sh", "-c", script, "sh"] + args, pass_fds=(to_browser_r, from_browser_w),
                                     stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        os.close(to_browser_r)
        os.close(from_browser_w)
        self.buffer = b""
        self.next_id = 0
        target = self.call("Target.createTarget", {"url": "about:blank"})["targetId"]
        self.session = self.call("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
        self.call("Page.enable", session=True)
        if no_js:
            self.call("Emulation.setScriptExecutionDisabled", {"value": True}, session=True)

    def call(self, method, params=None, session=False, timeout=30):
        self.next_id += 1
        msg = {"id": self.next_id, "method": method, "params": params or {}}
        if session:
            msg["sessionId"] = self.session
        os.write(self.to_browser, json.dumps(msg).encode() + b"\0")
        deadline = time.time() + timeout
        while time.time() < deadline:
            while b"\0" not in self.buffer:
                chunk = os.read(self.from_browser, 1 << 16)
                if not chunk:
                    raise RuntimeError("chromium closed the pipe")
                self.buffer += chunk
            raw, self.buffer = self.buffer.split(b"\0", 1)
            reply = json.loads(raw)
            if reply.get("id") == self.next_id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return reply.get("result", {})
        raise RuntimeError(f"{method}: no answer")

    def html(self):
        root = self.call("DOM.getDocument", {"depth": 0}, session=True)["root"]["nodeId"]
        return self.call("DOM.getOuterHTML", {"nodeId": root}, session=True)["outerHTML"]

    def url(self):
        return self.call("DOM.getDocument", {"depth": 0}, session=True)["root"].get("documentURL", "")

    def evaluate(self, js):
        return self.call("Runtime.evaluate", {"expression": js, "awaitPromise": True}, session=True)

    def close(self):
        try:
            self.call("Browser.close", timeout=5)
        except Exception:
            pass
        try:
            self.proc.wait(timeout=5)
        except Exception:
            self.proc.kill()
        shutil.rmtree(self.profile, ignore_errors=True)


def wait_for(browser, texts, deadline):
    html = ""
    while time.time() < deadline:
        try:
            html = browser.html()
        except RuntimeError:
            html = ""  # between navigations
        if all(t in html for t in texts):
            return True, html
        time.sleep(0.2)
    return False, html


def main():
    p = argparse.ArgumentParser()
    p.add_argument("url")
    p.add_argument("--no-js", action="store_true")
    p.add_argument("--wait-for", action="append", default=[])
    p.add_argument("--eval", action="append", default=[])
    p.add_argument("--then-wait-for", action="append", default=[])
    p.add_argument("--timeout", type=float, default=20)
    p.add_argument("--screenshot")
    a = p.parse_args()
    browser = Browser(a.no_js)
    started = time.time()
    try:
        browser.call("Page.navigate", {"url": a.url}, session=True)
        ok, html = wait_for(browser, a.wait_for, started + a.timeout)
        if ok:
            for js in a.eval:
                browser.evaluate(js)
            ok, html = wait_for(browser, a.then_wait_for, started + a.timeout)
        if a.screenshot:
            shot = browser.call("Page.captureScreenshot", {"format": "png"}, session=True)["data"]
            with open(a.screenshot, "wb") as f:
                f.write(base64.b64decode(shot))
        print(f"URL {browser.url()}")
        print(f"SECONDS {time.time() - started:.2f}")
        print(html)
        sys.exit(0 if ok else 1)
    finally:
        browser.close()


if __name__ == "__main__":
    main()
