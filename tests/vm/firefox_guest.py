"""Run inside the VM by `test_vm_firefox.py`: headless Firefox ESR loads a page from localhost.

The page runs its script and POSTs the result back to the server that served it: the simplest
way for a test to read a value out of the browser (no WebDriver, no Marionette client). Prints
one JSON object on stdout with what the page sent and how long each step took.
"""

from __future__ import annotations

import http.server
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

PAGE = b"""<!doctype html><html><body><script>
fetch('/result', {method: 'POST', body: JSON.stringify({
  sum: [1, 2, 3].reduce((a, b) => a + b),
  secureContext: window.isSecureContext,
  publicKeyCredential: typeof PublicKeyCredential,
  userAgent: navigator.userAgent,
})});
</script></body></html>"""

#: A profile for automation: no first-run pages, no update or telemetry traffic, and WebAuthn
#: over USB HID (authenticator-rs on /dev/hidraw*) on, the software token off.
USER_JS = """\
user_pref("security.webauth.webauthn", true);
user_pref("security.webauth.webauthn_enable_usbtoken", true);
user_pref("security.webauth.webauthn_enable_softtoken", false);
user_pref("security.webauthn.ctap2", true);
user_pref("browser.shell.checkDefaultBrowser", false);
user_pref("browser.startup.homepage_override.mstone", "ignore");
user_pref("datareporting.policy.dataSubmissionEnabled", false);
user_pref("toolkit.telemetry.reportingpolicy.firstRun", false);
user_pref("app.update.disabledForTesting", true);
user_pref("network.captive-portal-service.enabled", false);
user_pref("network.connectivity-service.enabled", false);
user_pref("browser.safebrowsing.update.enabled", false);
user_pref("extensions.update.enabled", false);
"""


def main(wait: float) -> None:
    started = time.monotonic()
    report: dict[str, Any] = {}
    posted = threading.Event()

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            report["page_served_after"] = round(time.monotonic() - started, 1)
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.send_header("Content-Length", str(len(PAGE)))
            self.end_headers()
            self.wfile.write(PAGE)

        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            report["posted"] = json.loads(body)
            report["posted_after"] = round(time.monotonic() - started, 1)
            self.send_response(204)
            self.end_headers()
            posted.set()

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    profile = tempfile.mkdtemp(prefix="firefox-profile-")
    Path(profile, "user.js").write_text(USER_JS)
    firefox = subprocess.Popen(
        [
            "firefox-esr",
            "--headless",
            "--no-remote",
            "--profile",
            profile,
            f"http://localhost:{server.server_address[1]}/",
        ],
        env={**os.environ, "HOME": tempfile.mkdtemp(prefix="home-")},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    report["posted_in_time"] = posted.wait(wait)
    firefox.terminate()
    try:
        output = firefox.communicate(timeout=30)[0]
    except subprocess.TimeoutExpired:
        firefox.kill()
        output = firefox.communicate()[0]
    report["firefox_output_tail"] = output.decode(errors="replace")[-2000:]
    server.shutdown()
    print(json.dumps(report))


if __name__ == "__main__":
    main(float(sys.argv[1]))
