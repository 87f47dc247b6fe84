"""Run inside the VM by `test_firefox_bridge.py`: Firefox ESR signs in with the phone through
the bridge's real uhid key.

In one process: the project's tunnel server, the software phone on bumble's virtual radio, the
bridge (`Bridge.run` on /dev/uhid) and a relying party (`Fido2Server`) serving a page on
http://localhost. Headless Firefox opens the page; its script runs `navigator.credentials`
create() and get() with the relying party's options and posts each result back for
verification. Prints one JSON report on stdout.

    python -m tests.vm.firefox_bridge_guest SECONDS
"""

from __future__ import annotations

import asyncio
import http.server
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from pathlib import Path
from typing import Any

from fido2.server import Fido2Server
from fido2.webauthn import (
    AttestedCredentialData,
    PublicKeyCredentialRpEntity,
    PublicKeyCredentialUserEntity,
    ResidentKeyRequirement,
)

from hybrid.authenticator import SoftwareAuthenticator, approve_all
from hybrid.ble.bumble_advertiser import BumbleAdvertiser
from hybrid.ble.bumble_backend import BumbleScannerBackend
from hybrid.ble.bumble_radio import VirtualRadio
from hybrid.bridge.daemon import Bridge
from hybrid.desktop import HybridClient
from tests.bridge.presenters import RecordingPresenter
from tests.e2e.test_ceremonies import PhoneRunner
from tunnel_server import ServerConfig, TunnelServer

#: The page: register (discoverable), sign in without a list, then sign in with an allowList
#: twice (Firefox's silent probe needs a signed answer: the first try is declined, the second
#: goes to the phone twice — docs/bridge.md "Probes"). Each step's outcome is posted back.
PAGE = b"""<!doctype html><html><body><script>
async function post(path, body) {
  const reply = await fetch(path, {method: 'POST', body: JSON.stringify(body)});
  return reply.json();
}
async function ceremony(name, kind, query) {
  const options = await (await fetch('/' + kind + '/begin' + query)).json();
  try {
    const credential = kind === 'register'
      ? await navigator.credentials.create(
          {publicKey: PublicKeyCredential.parseCreationOptionsFromJSON(options)})
      : await navigator.credentials.get(
          {publicKey: PublicKeyCredential.parseRequestOptionsFromJSON(options)});
    return await post('/' + kind + '/complete?step=' + name, credential.toJSON());
  } catch (e) {
    return await post('/failed?step=' + name, {name: e.name, message: e.message});
  }
}
(async () => {
  await ceremony('register', 'register', '');
  await ceremony('discoverable', 'authenticate', '?allow=0');
  await ceremony('allow_list_first_try', 'authenticate', '?allow=1');
  await ceremony('allow_list_second_try', 'authenticate', '?allow=1');
  await post('/done', {secureContext: window.isSecureContext, userAgent: navigator.userAgent});
})();
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


class RelyingParty:
    """Fido2Server behind the page's endpoints; `steps` says how each ceremony ended."""

    def __init__(self) -> None:
        rp = PublicKeyCredentialRpEntity(id="localhost", name="fido-hybrid bridge test")
        #: Set once the page's server has its port: only that page may use these credentials.
        self.origin = ""
        self.server = Fido2Server(rp, verify_origin=lambda seen: seen == self.origin)
        self.user = PublicKeyCredentialUserEntity(id=b"alice", name="alice", display_name="Alice")
        self.credentials: list[AttestedCredentialData] = []
        self.state: Any = None
        self.steps: dict[str, Any] = {}
        self.done = threading.Event()

    def get(self, path: str, query: dict[str, str]) -> Any:
        if path == "/register/begin":
            created, self.state = self.server.register_begin(
                self.user, resident_key_requirement=ResidentKeyRequirement.REQUIRED
            )
            return dict(created["publicKey"])
        allow = self.credentials if query.get("allow") == "1" else None
        requested, self.state = self.server.authenticate_begin(allow)
        return dict(requested["publicKey"])

    def post(self, path: str, query: dict[str, str], body: Any) -> Any:
        step = query.get("step", path.strip("/"))
        outcome: dict[str, Any]
        try:
            if path == "/register/complete":
                auth_data = self.server.register_complete(self.state, body)
                assert auth_data.credential_data is not None
                self.credentials.append(auth_data.credential_data)
                outcome = {"ok": True, "uv": auth_data.is_user_verified()}
            elif path == "/authenticate/complete":
                used = self.server.authenticate_complete(self.state, self.credentials, body)
                outcome = {"ok": True, "credential": used.credential_id.hex()}
            else:
                outcome = body  # a failure reported by the page, or the final summary
        except Exception as exc:  # a verification failure is the test's finding
            outcome = {"ok": False, "verify_error": "".join(traceback.format_exception(exc))}
        outcome["after"] = round(time.monotonic() - STARTED, 1)
        self.steps[step] = outcome
        if path == "/done":
            self.done.set()
        return {"recorded": step}


STARTED = time.monotonic()


def serve(rp: RelyingParty) -> http.server.ThreadingHTTPServer:
    class Handler(http.server.BaseHTTPRequestHandler):
        def _reply(self, body: bytes, kind: str) -> None:
            self.send_response(200)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def _split(self) -> tuple[str, dict[str, str]]:
            path, _, query = self.path.partition("?")
            return path, dict(p.split("=", 1) for p in query.split("&") if "=" in p)

        def do_GET(self) -> None:
            path, query = self._split()
            if path == "/":
                self._reply(PAGE, "text/html")
            elif path in ("/register/begin", "/authenticate/begin"):
                self._reply(json.dumps(rp.get(path, query)).encode(), "application/json")
            else:  # the browser's own requests (favicon.ico) must not touch the ceremony
                self.send_error(404)

        def do_POST(self) -> None:
            path, query = self._split()
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            self._reply(json.dumps(rp.post(path, query, body)).encode(), "application/json")

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def start_firefox(url: str) -> subprocess.Popen[bytes]:
    profile = tempfile.mkdtemp(prefix="firefox-profile-")
    Path(profile, "user.js").write_text(USER_JS)
    return subprocess.Popen(
        ["firefox-esr", "--headless", "--no-remote", "--profile", profile, url],
        env={**os.environ, "HOME": tempfile.mkdtemp(prefix="home-")},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )


def stop(process: subprocess.Popen[bytes]) -> str:
    process.terminate()
    try:
        output = process.communicate(timeout=30)[0]
    except subprocess.TimeoutExpired:
        process.kill()
        output = process.communicate()[0]
    return output.decode(errors="replace")[-3000:]


async def main(wait: float) -> dict[str, Any]:
    report: dict[str, Any] = {}
    async with (
        TunnelServer(ServerConfig(host="127.0.0.1", port=0)) as tunnel,
        VirtualRadio() as radio,
    ):
        advertiser = await BumbleAdvertiser.from_radio(radio, "phone")
        phone = PhoneRunner(
            SoftwareAuthenticator(approve=approve_all, verifies_user=True),
            advertiser,
            tunnel.url,
            timeout=wait,
        )
        presenter = RecordingPresenter(phone)
        client = HybridClient(
            origin="https://unused.invalid",
            tunnel_url=tunnel.url,
            scanner_backend=BumbleScannerBackend,
            scanner_kwargs={"radio": radio},
            timeout=wait,
            on_status=presenter.status,
            transports=("hybrid",),
        )
        bridge = Bridge(client, presenter, ceremony_timeout=wait)
        stopping = asyncio.Event()
        plugged: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        running = asyncio.create_task(bridge.run(stopping, plugged.set_result))
        report["hidraw"] = await asyncio.wait_for(plugged, 120)
        rp = RelyingParty()
        web = serve(rp)
        rp.origin = f"http://localhost:{web.server_address[1]}"
        firefox = start_firefox(rp.origin + "/")
        report["finished"] = await asyncio.to_thread(rp.done.wait, wait)
        report["firefox_output_tail"] = stop(firefox)
        web.shutdown()
        report["steps"] = rp.steps
        report["qr_codes"] = len(phone.urls)
        report["requests"] = [(r.kind, r.rp_id) for r in presenter.requests]
        report["outcomes"] = presenter.outcomes
        report["notices"] = presenter.notices
        stopping.set()
        await asyncio.wait_for(running, 60)
        for task in phone.tasks:
            task.cancel()
        await asyncio.gather(*phone.tasks, return_exceptions=True)
        await advertiser.close()
    return report


if __name__ == "__main__":
    print(json.dumps(asyncio.run(main(float(sys.argv[1])))))
