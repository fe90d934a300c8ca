"""Running the interop tests' Node scripts (tests/interop/*.mjs) against the live server.

A script writes one JSON object per line to stdout: ``{"authorize": URL}`` asks for a person
at that authorization URL (the Browser answers, and the URL it was sent back to goes to the
script's stdin); any other message goes to ``on_message``, whose answer (if any) is written
back; the last line is ``{"result": ...}`` or ``{"error": ...}``."""

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from support.oidc import Browser

INTEROP = Path(__file__).parent.parent / "interop"


def node_or_skip(package: str = "openid-client") -> str:
    """The node executable, with the package installed under tests/interop; skip the test
    otherwise, except in CI (CI=true), where it must run."""
    node = shutil.which("node")
    installed = (INTEROP / "node_modules" / package).is_dir()
    if node and installed:
        return node
    reason = ("node is not on PATH" if not node else
              "tests/interop/node_modules is missing: run `npm ci --prefix tests/interop` (make test does)")
    if os.environ.get("CI") == "true":
        pytest.fail(f"the interop test must run in CI, but {reason}")
    pytest.skip(reason)


def run_script(node: str, script: str, config: dict, browser: Browser, on_message=None, timeout: int = 30) -> dict:
    """Run tests/interop/<script> with the config; play its person; return its result."""
    process = subprocess.Popen([node, str(INTEROP / script), json.dumps(config)], cwd=INTEROP, text=True,
                               stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    message = {}
    try:
        for line in process.stdout:
            message = json.loads(line)
            if "result" in message or "error" in message:
                break
            answer = browser.authorize(message["authorize"]) if "authorize" in message else on_message(message)
            if answer is not None:
                process.stdin.write(answer + "\n")
                process.stdin.flush()
        process.stdin.close()
        process.wait(timeout=timeout)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    stderr = process.stderr.read()
    process.stdout.close()
    process.stderr.close()
    assert "result" in message and "error" not in message, (message, stderr)
    return message["result"]
