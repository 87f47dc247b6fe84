"""`--prf TEXT` for `python -m hybrid.qr`: evaluate the passkey's PRF at up to two UTF-8 inputs.

The inputs go into the options' `extensions.prf.eval` (base64url, as a site would send them);
the outputs are printed from `clientExtensionResults.prf.results`, on stderr like the progress
lines, so stdout keeps only the credential JSON.
"""

from __future__ import annotations

import argparse
from collections.abc import Mapping, Sequence
from typing import Any, TextIO

from fido2.utils import websafe_encode

MAX_PRF_INPUTS = 2
_NAMES = ("first", "second")


class _AppendAtMostTwo(argparse.Action):
    def __call__(
        self,
        parser: argparse.ArgumentParser,
        namespace: argparse.Namespace,
        values: str | Sequence[Any] | None,
        option_string: str | None = None,
    ) -> None:
        inputs = [*getattr(namespace, self.dest), values]
        if len(inputs) > MAX_PRF_INPUTS:
            parser.error(f"{option_string} may be given at most {MAX_PRF_INPUTS} times")
        try:
            str(values).encode()
        except UnicodeEncodeError:  # undecodable bytes in argv arrive as lone surrogates
            parser.error(f"{option_string} must be UTF-8 text")
        setattr(namespace, self.dest, inputs)


def add_prf_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--prf",
        metavar="TEXT",
        action=_AppendAtMostTwo,
        default=[],
        help="evaluate the passkey's PRF at TEXT (UTF-8; give it twice for two outputs)",
    )


def with_prf_inputs(options: Any, inputs: Sequence[str]) -> Any:
    """The options with `extensions.prf.eval` set from `inputs` (unchanged if there are none)."""
    if not inputs or not isinstance(options, Mapping):
        return options  # preparing the request reports what is wrong with the options
    if len(inputs) > MAX_PRF_INPUTS:
        raise ValueError(f"at most {MAX_PRF_INPUTS} PRF inputs")
    evaluate = {
        name: websafe_encode(text.encode()) for name, text in zip(_NAMES, inputs, strict=False)
    }
    extensions = dict(options.get("extensions") or {})
    extensions["prf"] = {"eval": evaluate}
    return {**options, "extensions": extensions}


def print_prf_results(credential: Mapping[str, Any], inputs: Sequence[str], err: TextIO) -> None:
    """One line per PRF output (base64url), or why there is none."""
    if not inputs:
        return
    prf = credential.get("clientExtensionResults", {}).get("prf", {})
    results = prf.get("results") or {}
    if not results:
        print(
            "No PRF output: the phone does not offer the prf extension, or this passkey has none.",
            file=err,
            flush=True,
        )
    for name in _NAMES:
        if name in results:
            print(f"PRF {name}: {results[name]}", file=err, flush=True)
