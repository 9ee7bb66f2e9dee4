#!/usr/bin/env python3
"""Open a run report in headless Chromium and check, in the browser, that its timeline plots decoded.

    python scripts/check_report_browser.py runs/latest/report.html   (or: make check-report)

The report carries no script. The checker copies it to a temporary page with one script appended,
which waits for the page's images, then writes for every ``#timeline img`` its ``complete`` and
``naturalWidth`` into the DOM; Chromium prints the DOM (``--dump-dom``) and this script reads the
result back. It prints one line of JSON and exits 0 when at least ``--min-images`` timeline images
are there and each has ``complete === true`` and ``naturalWidth > 0``; 1 when not; 2 when there is
no browser or it failed. Standard library only; the browser is CHROMIUM, else chromium or
chromium-browser on PATH (Debian: ``apt-get install chromium``).
"""
from __future__ import annotations

import argparse
import html
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

RESULT_ID = "report-browser-check"
# runs after the load event (every image has loaded or failed by then); decode() waits for the
# decoded bitmap as well, so a broken PNG is caught even where `complete` alone would be true
CHECK_JS = """
<script>
window.addEventListener("load", async () => {
  const imgs = Array.from(document.querySelectorAll("#timeline img"));
  const decoded = await Promise.all(imgs.map(i => i.decode().then(() => true, () => false)));
  const images = imgs.map((i, k) => ({alt: i.alt, complete: i.complete === true, decoded: decoded[k],
                                      naturalWidth: i.naturalWidth, naturalHeight: i.naturalHeight}));
  const out = document.createElement("pre");
  out.id = "%s";
  out.textContent = JSON.stringify({images: images, userAgent: navigator.userAgent});
  document.body.appendChild(out);
});
</script>
""" % RESULT_ID
RESULT_RE = re.compile(r'<pre id="%s">(.*?)</pre>' % RESULT_ID, re.S)


def find_browser() -> str | None:
    env = os.environ.get("CHROMIUM")
    if env:
        return shutil.which(env) or (env if Path(env).is_file() else None)
    return next((p for p in map(shutil.which, ("chromium", "chromium-browser")) if p), None)


def dump_dom(browser: str, page: Path, profile: Path, timeout_s: float) -> str:
    cmd = [browser, "--headless=new", "--disable-gpu", "--no-sandbox", "--no-first-run", "--disable-extensions",
           "--disable-dev-shm-usage", "--mute-audio", f"--user-data-dir={profile}", "--virtual-time-budget=5000",
           "--dump-dom", page.resolve().as_uri()]
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout_s)  # nosec B603 - fixed argv, no shell
    if res.returncode != 0:
        raise RuntimeError(f"{Path(browser).name} exited {res.returncode}: {res.stderr.strip()[-500:]}")
    return res.stdout


def check(report: Path, browser: str, min_images: int = 1, timeout_s: float = 60) -> dict:
    """The browser's view of the report's timeline images, with ``ok``."""
    t = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="report-check-") as tmp:
        page = Path(tmp) / "report.html"
        page.write_text(report.read_text(encoding="utf-8") + CHECK_JS, encoding="utf-8")
        dom = dump_dom(browser, page, Path(tmp) / "profile", timeout_s)
    m = RESULT_RE.search(dom)
    if not m:
        raise RuntimeError("the check's result is not in the browser's DOM (script did not run?)")
    found = json.loads(html.unescape(m.group(1)))
    images = found["images"]
    bad = [i["alt"] for i in images if not (i["complete"] and i["decoded"] and i["naturalWidth"] > 0)]
    ok = len(images) >= min_images and not bad
    reason = ("" if ok else f"{len(bad)} image(s) not decoded: {bad}" if bad
              else f"{len(images)} timeline image(s), expected at least {min_images}")
    return {"ok": ok, "report": str(report), "images": images, "failed": bad, **({"reason": reason} if reason else {}),
            "browser": found.get("userAgent"), "seconds": round(time.monotonic() - t, 2)}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("report", type=Path, help="report.html of a local run (e.g. runs/latest/report.html)")
    ap.add_argument("--min-images", type=int, default=1, help="timeline images the report must have (default 1)")
    ap.add_argument("--timeout", type=float, default=60, help="seconds the browser may take (default 60)")
    args = ap.parse_args(argv)
    if not args.report.is_file():
        print(json.dumps({"ok": False, "report": str(args.report), "reason": "no such file"}))
        return 1
    browser = find_browser()
    if not browser:
        print(json.dumps({"ok": False, "reason": "no chromium binary (set CHROMIUM or apt-get install chromium)"}))
        return 2
    try:
        result = check(args.report, browser, args.min_images, args.timeout)
    except (RuntimeError, OSError, subprocess.TimeoutExpired, ValueError) as e:
        print(json.dumps({"ok": False, "report": str(args.report), "reason": f"browser check failed: {e}"}))
        return 2
    print(json.dumps(result))
    return 0 if result["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
