"""A worker broker: imports the frameworks once and forks a whole worker server for each
controller that connects, for a test suite whose every command would otherwise import
TensorFlow again (about 6 s of CPU each, half of `make test`).

    python -m batchbench.worker.broker SOCKET_PATH   (runner.BROKER_VAR names the socket)

A controller (runner.Worker.start) connects, sends one JSON line (its worker environment, its
working folder, the batchbench and the Python it runs) and the descriptor the server's log
goes to. Where anything that takes effect at import differs (runner.IMPORT_VARS: the backend,
log levels, thread and device variables), the broker refuses and the controller starts its
own server, as without a broker. Otherwise the forked server takes the controller's
environment and folder and speaks the server's protocol over the connection: one fresh child
per job, exactly as worker/server.py does, its memory figures included (the file pages
resident here are mapped back into each trial, as the server's are). It ends when the
controller closes the connection or dies, taking what its trial started with it.
"""

from __future__ import annotations

import json
import os
import select
import signal
import socket
import sys
import threading

from batchbench.worker import server

PACKAGE_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def main(path: str) -> None:
    server._prctl(server.PR_SET_PDEATHSIG, signal.SIGTERM)  # goes with whoever started it
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 1)  # native libraries print to fd 1
    import_s, error = server.import_frameworks()
    if error:
        sys.exit(f"batchbench broker: {error}")
    resident = server.resident_file_pages()
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # forked servers are reaped by the kernel
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    tmp = f"{path}.{os.getpid()}"
    listener.bind(tmp)
    listener.listen(64)
    os.replace(tmp, path)  # connectable only once the imports are done
    identity = {"package_dir": PACKAGE_DIR, "python": sys.executable,
                "imports": {k: os.environ.get(k) for k in _import_vars()}}
    while True:
        conn, _ = listener.accept()
        try:
            header, fds = _receive(conn)
        except (OSError, ValueError):
            conn.close()
            continue
        why = _mismatch(header, identity)
        if why:
            _send(conn, event="refused", why=why)
            conn.close()
            for fd in fds:
                os.close(fd)
            continue
        pid = os.fork()
        if pid == 0:
            listener.close()
            _serve(conn, header, fds, import_s, resident)
        conn.close()
        for fd in fds:
            os.close(fd)


def _import_vars() -> tuple[str, ...]:
    from batchbench.runner import IMPORT_VARS

    return IMPORT_VARS


def _receive(conn: socket.socket) -> tuple[dict, list[int]]:
    data, fds, _, _ = socket.recv_fds(conn, 1 << 20, 1)
    while not data.endswith(b"\n"):
        more = conn.recv(1 << 20)
        if not more:
            raise ValueError("the controller left before its header ended")
        data += more
    return json.loads(data), list(fds)


def _send(conn: socket.socket, **event) -> None:
    conn.sendall((json.dumps(event) + "\n").encode())


def _mismatch(header: dict, identity: dict) -> str | None:
    if header.get("package_dir") != identity["package_dir"] or header.get("python") != identity["python"]:
        return "another batchbench or Python"
    env = header.get("env") or {}
    differ = sorted(k for k, v in identity["imports"].items() if env.get(k) != v)
    return f"{', '.join(differ)} differ from the broker's" if differ else None


def _serve(conn: socket.socket, header: dict, fds: list[int], import_s: float, resident) -> None:
    """In the forked server: the controller's environment, folder and log, then the loop."""
    code = 0
    try:
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)  # this server waits for its own children
        os.environ.clear()
        os.environ.update(header["env"])
        os.chdir(header["cwd"])
        log = fds[0] if fds else os.open(os.devnull, os.O_WRONLY)
        os.dup2(log, 2)
        os.dup2(log if os.environ.get("BATCHBENCH_VERBOSE") == "1" else os.open(os.devnull, os.O_WRONLY), 1)
        _end_with(conn)
        server.serve(conn.makefile("r"), conn.makefile("w", buffering=1), import_s, None, resident)
    except BaseException:  # noqa: BLE001 - a forked server never returns into the broker's loop
        code = 70
    finally:
        os._exit(code)


def _end_with(conn: socket.socket) -> None:
    """SIGTERM to this server (its handler ends the running trial and what it started) once the
    controller hangs up: the broker's child has no parent-death signal for the controller."""
    def watch() -> None:
        poller = select.poll()
        poller.register(conn.fileno(), select.POLLRDHUP | select.POLLHUP)
        while True:
            for _, flags in poller.poll():
                if flags & (select.POLLRDHUP | select.POLLHUP | select.POLLERR):
                    os.kill(os.getpid(), signal.SIGTERM)
                    return

    threading.Thread(target=watch, daemon=True).start()


if __name__ == "__main__":
    main(sys.argv[1])
