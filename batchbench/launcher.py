"""Start N processes of one multi-process run on this machine (a stand-in for N hosts):
this process is rank 0; the others run `batchbench sweep ... --process-id I`."""

from __future__ import annotations

import socket
import subprocess
from pathlib import Path
from typing import Any

from batchbench.axes import AXES
from batchbench.config import Config
from batchbench.distributed import Distributed
from batchbench.errors import ConfigError
from batchbench.rundir import default_run_dir
from batchbench.runfiles import make_dir, open_append
from batchbench.runner import python_command

# Options passed through to the peers unchanged (their value, if any, follows).
FLAGS = ("find_max",)
PASS_THROUGH = ("join_timeout", "batch_sizes", "modes", "methods", "repeats", "memory_limit", "device_memory_limit", "margin",
                "slo_ms", "percentile", *AXES)


def free_port_range(count: int = 200) -> int:
    """A base port whose first port is free now (each job uses the next port)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return port if port + count < 65536 else 20000


class LocalLauncher:
    def __init__(self, config: Config, kw: dict[str, Any]):
        n = kw["local_processes"]
        if n < 1:
            raise ConfigError(f"got {n}, expected 1 or more", key="--local-processes")
        if kw.get("num_processes") or kw.get("process_id") is not None or kw.get("coordinator"):
            raise ConfigError("give either --local-processes or --num-processes/--process-id/--coordinator",
                              key="--local-processes")
        self.config, self.kw, self.n = config, kw, n
        self.peers: list[subprocess.Popen] = []

    def start(self) -> tuple[Distributed, Path]:
        out = Path(self.kw["out"]) if self.kw.get("out") else default_run_dir(self.config)
        port = free_port_range()
        dist = Distributed(self.n, 0, "127.0.0.1", port, self.kw.get("join_timeout") or 60)
        if not self.config.source_file or not Path(self.config.source_file).exists():
            raise ConfigError("--local-processes needs a CONFIG file (the other processes read it)",
                              key="--local-processes")
        for rank in range(1, self.n):
            # python -P: `-m batchbench` would put the working folder (often the config's) on sys.path.
            argv = python_command("batchbench", "sweep", self.config.source_file, "--out", str(out), "-q",
                                  "--num-processes", str(self.n), "--process-id", str(rank),
                                  "--coordinator", f"127.0.0.1:{port}")
            for key in PASS_THROUGH:
                value = self.kw.get(key)
                if value is not None:
                    argv += [f"--{key.replace('_', '-')}", str(value)]
            argv += [f"--{flag.replace('_', '-')}" for flag in FLAGS if self.kw.get(flag)]
            make_dir(out)
            log_dir = make_dir(out / "peers")
            with open_append(log_dir / f"process-{rank}.log", binary=True) as log:
                self.peers.append(subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT,
                                                   stdin=subprocess.DEVNULL))
        return dist, out

    def peer_failed(self) -> str | None:
        for rank, proc in enumerate(self.peers, start=1):
            code = proc.poll()
            if code not in (None, 0):
                return f"process {rank} exited with code {code}"
        return None

    def finish(self, grace_s: float = 60.0) -> None:
        """Wait for the peers; a JAX process can ignore SIGTERM once training started, so
        the ones still running after the grace period get SIGKILL."""
        for proc in self.peers:
            try:
                proc.wait(timeout=grace_s)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
