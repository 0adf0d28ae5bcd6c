"""Screenshot a --timeline JSON in the Chrome trace viewer, headless.

The viewer is catapult's (the one behind chrome://tracing): its trace2html
packs the viewer and the trace into one HTML file, which headless Chromium
opens from disk, so nothing needs the network. Used for
docs/timeline-munmap-4cpu-trace-viewer.png:

    gcc -static -O2 -pthread -o munmap_threads guest/tests/trace/munmap_threads.c
    .venv/bin/emu run --cpus 4 --timeline munmap4.json ./munmap_threads
    python docs/tools/trace_viewer_screenshot.py --catapult CATAPULT munmap4.json out.png

Needs (never project dependencies): a catapult checkout
(git clone https://github.com/catapult-project/catapult), Chromium and
chromedriver (Debian: apt install chromium chromium-driver), and selenium
(pip install selenium).
"""
from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--catapult", required=True, type=Path, help="a catapult checkout")
    parser.add_argument("--chromium", default="/usr/bin/chromium")
    parser.add_argument("--chromedriver", default="/usr/bin/chromedriver")
    parser.add_argument("--size", default="1600,900", help="window width,height")
    parser.add_argument("--select", default="syscall munmap",
                        help="click the first slice with this title so the panel shows its fields ('' for none)")
    parser.add_argument("trace", type=Path)
    parser.add_argument("png", type=Path)
    args = parser.parse_args()
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        print("trace_viewer_screenshot: needs selenium (pip install selenium)", file=sys.stderr)
        return 2
    trace2html = args.catapult / "tracing" / "bin" / "trace2html"
    if not trace2html.exists():
        print(f"trace_viewer_screenshot: {trace2html} not found (--catapult)", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory() as scratch:
        page = Path(scratch) / "timeline.html"
        subprocess.run([sys.executable, str(trace2html), str(args.trace.resolve()), f"--output={page}"],
                       check=True, stdout=subprocess.DEVNULL)
        options = webdriver.ChromeOptions()
        options.binary_location = args.chromium
        for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                     f"--window-size={args.size}"):
            options.add_argument(flag)
        driver = webdriver.Chrome(service=Service(args.chromedriver), options=options)
        try:
            driver.get(page.as_uri())
            for _ in range(60):           # the viewer imports the trace asynchronously
                if "Importing" not in driver.execute_script("return document.body.innerText"):
                    break
                time.sleep(0.5)
            else:
                print("trace_viewer_screenshot: the viewer did not finish importing", file=sys.stderr)
                return 1
            # Flow arrows (IPI send -> arrival) are hidden until their category is
            # ticked under "Flow events"; tick every category.
            driver.execute_script("""
                const view = document.querySelector('tr-ui-timeline-view');
                for (const flow of view.model.flowEvents)
                  for (const category of tr.b.getCategoryParts(flow.category))
                    view.selectedFlowEvents.add(category);
                view.trackView_.viewport.dispatchChangeEvent();""")
            if args.select:
                # Select the first slice with that title through the viewer's own model, as a
                # click would, so the analysis panel shows its arguments.
                found = driver.execute_script("""
                    const view = document.querySelector('tr-ui-timeline-view');
                    const model = view.model;
                    for (const slice of model.getDescendantEvents()) {
                      if (slice.title === arguments[0]) {
                        const selection = new tr.model.EventSet([slice]);
                        view.brushingStateController.changeSelectionFromTimeline(selection);
                        return true;
                      }
                    }
                    return false;""", args.select)
                if not found:
                    print(f"trace_viewer_screenshot: no slice titled {args.select!r}", file=sys.stderr)
                    return 1
                time.sleep(1)
            driver.save_screenshot(str(args.png))
        finally:
            driver.quit()
    print(f"wrote {args.png}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
