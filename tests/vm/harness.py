"""Run a command inside a throwaway VM that has the kernel's uhid + hidraw stack.

The sandbox kernel this project is developed and tested on has no uhid, so the virtual security
key (`hybrid.bridge`) cannot be exercised there. Debian's kernel package ships uhid as a module;
virtme-ng (`vng`) boots that kernel in QEMU over this machine's own root file system (9p,
read-only, with tmpfs overlays on /etc, /tmp, /var ...), so the command sees the same programs and
the same Python venv as the test that started it. Guest stdout and stderr come back separately
and `vng` exits with the command's status.

Inside the guest: `/dev` is a devtmpfs, so the kernel itself creates `/dev/uhid` once `uhid` is
loaded and `/dev/hidrawN` as soon as a uhid device is created, without udev; loopback is up;
the command runs as root. Only directories given as `rwdirs` are written through to the host.

KVM is used when it boots a guest, otherwise QEMU's TCG emulator (slower, always there); the
choice is probed once per machine and kernel and cached, or forced with
`HYBRID_VM_ACCEL=kvm|tcg`. On this project's sandbox machines /dev/kvm is PVM, which cannot run
Debian's kernel, so TCG is chosen there without a probe: boot ~13 s idle, ~25 s on a busy
machine; a Python import is slow too (`import fido2.hid` ~15 s).
"""

from __future__ import annotations

import glob
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest

__all__ = [
    "VmResult",
    "VmTimeout",
    "find_kernel",
    "require_vm",
    "run_in_vm",
    "vm_accel",
    "vm_unavailable_reason",
]

#: What the guest gets: enough for a headless Firefox next to the test's own processes.
MEMORY = "2G"
CPUS = 2
#: The guest cannot be sure of a KVM boot that has not finished by then (TCG boots in ~20 s).
KVM_PROBE_SECONDS = 20.0
#: `-cpu host` makes QEMU 7.2 abort on this sandbox's nested KVM ("failed to set MSR 0x10a").
KVM_CPU = "host,-arch-capabilities"
#: The wrapper's exit status when the guest lacks uhid: tells a broken VM from a failing test.
NO_UHID_STATUS = 97
INSTALL_HINT = "run scripts/install-system-packages.sh and `pip install -e '.[dev]'`"


@dataclass(frozen=True)
class VmResult:
    """What the command did in the guest, and how the guest was run."""

    returncode: int
    stdout: str
    stderr: str
    accel: str
    seconds: float


class VmTimeout(TimeoutError):
    """The guest did not finish in time; it was killed. Carries what it had printed."""

    def __init__(self, timeout: float, stdout: str, stderr: str) -> None:
        super().__init__(
            f"VM command did not finish within {timeout:.0f} s\n"
            f"--- stdout ---\n{stdout}\n--- stderr ---\n{stderr}"
        )
        self.stdout = stdout
        self.stderr = stderr


def _kernel_version(vmlinuz: str) -> str:
    return Path(vmlinuz).name.removeprefix("vmlinuz-")


def _version_key(version: str) -> list[int]:
    return [int(n) for n in re.findall(r"\d+", version)]


def find_kernel() -> str | None:
    """The newest `/boot/vmlinuz-*` whose modules include uhid, or None."""
    candidates = [
        path
        for path in glob.glob("/boot/vmlinuz-*")
        if glob.glob(f"/lib/modules/{_kernel_version(path)}/kernel/drivers/hid/uhid.ko*")
    ]
    if not candidates:
        return None
    return max(candidates, key=lambda p: _version_key(_kernel_version(p)))


def _vng() -> str | None:
    beside_python = Path(sys.executable).parent / "vng"
    return str(beside_python) if beside_python.exists() else shutil.which("vng")


def vm_unavailable_reason() -> str | None:
    """Why `run_in_vm` cannot work on this machine, or None when it can."""
    missing = []
    if not shutil.which("qemu-system-x86_64"):
        missing.append("qemu-system-x86_64 (Debian package qemu-system-x86)")
    if not (shutil.which("busybox") or os.path.exists("/bin/busybox")):
        missing.append("busybox (Debian package busybox-static), for vng's initramfs")
    if find_kernel() is None:
        missing.append("a /boot/vmlinuz-* with uhid.ko (Debian package linux-image-amd64)")
    if _vng() is None:
        missing.append("vng (PyPI package virtme-ng)")
    if not missing:
        return None
    return f"no VM with uhid: missing {'; '.join(missing)}; {INSTALL_HINT}"


def require_vm(*programs: str) -> None:
    """Skip the calling test loudly when no VM (or one of `programs`) can be had; under CI, fail.

    CI installs everything the VM tests need (scripts/install-system-packages.sh, the `dev`
    extra), so there a missing piece is a broken install step that must turn the run red.
    """
    reason = vm_unavailable_reason()
    missing = [program for program in programs if shutil.which(program) is None]
    if reason is None and missing:
        reason = f"missing {', '.join(missing)}; {INSTALL_HINT}"
    if reason is None:
        return
    if os.environ.get("CI"):
        pytest.fail(f"CI must run the VM tests, but {reason}", pytrace=False)
    pytest.skip(f"VM TESTS NOT RUN: {reason}")


def _vng_command(kernel: str, accel: str, rwdirs: Sequence[str], script: str) -> list[str]:
    vng = _vng()
    assert vng is not None, vm_unavailable_reason()
    command = [vng, "--run", kernel, "--memory", MEMORY, "--cpus", str(CPUS)]
    if accel == "kvm":
        command.append(f"--qemu-opts=-cpu {KVM_CPU}")
    else:
        command.append("--disable-kvm")
    for rwdir in rwdirs:
        command.append(f"--rwdir={rwdir}")
    return [*command, "--", f"sh {shlex.quote(script)}"]


def _run(command: list[str], timeout: float) -> tuple[int, str, str]:
    """Run vng in its own process group so that a timeout kills QEMU too."""
    process = subprocess.Popen(
        command,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,
        text=True,
        errors="replace",
    )
    try:
        stdout, stderr = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        stdout, stderr = process.communicate()
        raise VmTimeout(timeout, stdout, stderr) from None
    return process.returncode, stdout, stderr


def _accel_cache(kernel: str) -> Path:
    return Path(tempfile.gettempdir()) / f"fido-hybrid-vm-accel-{_kernel_version(kernel)}"


def vm_accel() -> str:
    """`kvm` when a KVM guest boots here (probed once per machine and kernel), else `tcg`."""
    forced = os.environ.get("HYBRID_VM_ACCEL", "")
    if forced in ("kvm", "tcg"):
        return forced
    kernel = find_kernel()
    if kernel is None or not os.access("/dev/kvm", os.R_OK | os.W_OK):
        return "tcg"
    if Path("/sys/module/kvm_pvm").exists():
        # This sandbox's /dev/kvm is PVM (pagetable-based, no VMX/SVM): it runs only guest
        # kernels built for PVM, and Debian's hangs in its decompressor. Don't spend a probe.
        return "tcg"
    cache = _accel_cache(kernel)
    if cache.exists():
        return cache.read_text().strip()
    with tempfile.TemporaryDirectory(prefix="vm-probe-") as scratch:
        script = Path(scratch, "probe.sh")
        script.write_text("echo kvm-ok\n")
        try:
            status, stdout, _ = _run(
                _vng_command(kernel, "kvm", [], str(script)), KVM_PROBE_SECONDS
            )
            accel = "kvm" if status == 0 and "kvm-ok" in stdout else "tcg"
        except VmTimeout:
            accel = "tcg"
    cache.write_text(accel)
    return accel


def _script(command: str, cwd: str, env: Mapping[str, str]) -> str:
    venv_bin = str(Path(sys.executable).parent)
    exports = {
        "PATH": f"{venv_bin}:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        "VIRTUAL_ENV": sys.prefix,
        "PYTHONDONTWRITEBYTECODE": "1",
        "HYBRID_VM_PYTHON": sys.executable,
        **env,
    }
    lines = [
        "modprobe uhid",
        f"[ -c /dev/uhid ] || {{ echo 'VM: no /dev/uhid after modprobe uhid' >&2; "
        f"exit {NO_UHID_STATUS}; }}",
        *(f"export {name}={shlex.quote(value)}" for name, value in exports.items()),
        f"cd {shlex.quote(cwd)} || exit 1",
        f"exec sh -c {shlex.quote(command)}",
    ]
    return "\n".join(lines) + "\n"


def run_in_vm(
    command: str,
    *,
    timeout: float,
    cwd: str | None = None,
    env: Mapping[str, str] | None = None,
    rwdirs: Sequence[str] = (),
) -> VmResult:
    """Boot the uhid kernel, run `command` with `sh -c` as root, and return what it did.

    The guest sees this machine's files read-only (writes land in throwaway overlays) except
    `rwdirs`; `python` is this process's venv interpreter; `cwd`
    defaults to ours; `env` adds to a minimal environment (the host's is not passed on).
    Raises `VmTimeout` after `timeout` seconds, boot included.
    """
    reason = vm_unavailable_reason()
    if reason is not None:
        raise RuntimeError(reason)
    kernel = find_kernel()
    assert kernel is not None
    accel = vm_accel()
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="vm-run-") as scratch:
        script = Path(scratch, "run.sh")
        script.write_text(_script(command, cwd or os.getcwd(), env or {}))
        status, stdout, stderr = _run(_vng_command(kernel, accel, rwdirs, str(script)), timeout)
    return VmResult(status, stdout, stderr, accel, time.monotonic() - started)
