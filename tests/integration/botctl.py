"""Running the bot under test: in this process (fast, inspectable) or as a real process that a
test can SIGKILL (the crash tests)."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from bot.app import App
from bot.config import load_config
from bot.engine.faults import Faults


@asynccontextmanager
async def bot_in_process(config_path: Path, *, ready_timeout: float = 60) -> AsyncIterator[App]:
    app = App(load_config(config_path), faults=Faults(None, None))
    try:
        await app.start()
        await app.wait_ready(ready_timeout)
        yield app
    finally:
        await app.stop()


class BotProcess:
    """``python -m bot run --config …`` as a child process, its output in a log file."""

    def __init__(
        self, config_path: Path, *, fault: str | None = None, fault_dir: Path | None = None
    ) -> None:
        self.config_path = config_path
        self.log_path = config_path.parent / "bot.log"
        self.fault = fault
        self.fault_dir = fault_dir or config_path.parent
        self.process: asyncio.subprocess.Process | None = None

    async def start(self) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith("LARMKEDJA_FAULT")}
        if self.fault:
            env["LARMKEDJA_FAULT"] = self.fault
            env["LARMKEDJA_FAULT_DIR"] = str(self.fault_dir)
        log = open(self.log_path, "ab")  # noqa: SIM115 - handed to the child
        try:
            self.process = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "bot",
                "run",
                "--config",
                str(self.config_path),
                stdout=log,
                stderr=log,
                env=env,
            )
        finally:
            log.close()

    async def wait(self, timeout: float = 60) -> int:
        assert self.process is not None
        return await asyncio.wait_for(self.process.wait(), timeout)

    async def stop(self) -> int | None:
        """SIGTERM, then SIGKILL after 15 s; returns the exit code."""
        if self.process is None or self.process.returncode is not None:
            return None if self.process is None else self.process.returncode
        self.process.send_signal(signal.SIGTERM)
        try:
            return await asyncio.wait_for(self.process.wait(), 15)
        except TimeoutError:
            self.process.kill()
            return await self.process.wait()

    def log(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace")
