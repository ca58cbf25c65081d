"""`demo --no-gui` as a user runs it in a terminal: wait for its simulator, use it, then press Ctrl+C."""

from __future__ import annotations

import base64
import signal
import subprocess
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class RunningDemo:
    proc: subprocess.Popen[str]
    url: str = ""
    printed: list[str] = field(default_factory=list)

    def metadata(self, user: str = "demo", password: str = "demo") -> str:
        token = base64.b64encode(f"{user}:{password}".encode()).decode()
        request = urllib.request.Request(self.url + "/$metadata", headers={"Authorization": f"Basic {token}"})
        with urllib.request.urlopen(request, timeout=30) as answer:
            return str(answer.read().decode("utf-8"))

    def interrupt(self, timeout: float = 60) -> tuple[int, str]:
        """Ctrl+C, then the exit code and what it wrote to stderr."""
        self.proc.send_signal(signal.SIGINT)
        try:
            _, err = self.proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            # Never leave it (and, through its parent watch, its simulator) running after the test.
            self.proc.kill()
            self.proc.communicate()
            raise
        return self.proc.returncode, err


def start_demo(command: list[str], env: dict[str, str], cwd: Path) -> RunningDemo:
    """Start it and read its output until it says the simulator runs; fails with what it printed."""
    proc = subprocess.Popen(
        command, env=env, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    demo = RunningDemo(proc)
    assert proc.stdout is not None
    for line in proc.stdout:
        demo.printed.append(line)
        if line.startswith("Personify360 simulator at "):
            demo.url = line.split(" at ", 1)[1].split()[0]
        if "runs until Ctrl+C" in line:
            return demo
    proc.wait(30)
    raise AssertionError(
        "demo ended before its simulator ran:\n" + "".join(demo.printed) + proc.stderr.read()
    )
