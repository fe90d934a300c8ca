"""Run the server as separate processes, as production does: gunicorn with the repository's
gunicorn.conf.py, each instance on its own loopback port, all on one database."""

import os
import signal
import socket
import subprocess
import sys
import time
from contextlib import ExitStack, contextmanager
from pathlib import Path

import requests

REPOSITORY = Path(__file__).resolve().parents[2]


class Instance:
    """One server process: its base ``url`` and the log it writes (gunicorn's and the app's)."""

    def __init__(self, url: str, process: subprocess.Popen, log_path: Path):
        self.url = url
        self.process = process
        self.log_path = log_path

    def log(self) -> str:
        """Everything the instance has logged so far."""
        return self.log_path.read_text(errors="replace")

    def __repr__(self) -> str:
        return f"<Instance {self.url}>"


def start_instance(env: dict, log_path: Path, workers: int = 1) -> Instance:
    """Start gunicorn on a free loopback port with ``env`` added to the environment."""
    # gunicorn listens on a socket opened here (fd://), so no port is picked and then lost to a race.
    listener = socket.create_server(("127.0.0.1", 0))
    listener.set_inheritable(True)
    port = listener.getsockname()[1]
    command = [sys.executable, "-m", "gunicorn", "-c", str(REPOSITORY / "gunicorn.conf.py"),
               "--bind", f"fd://{listener.fileno()}", "--workers", str(workers)]
    try:
        with open(log_path, "wb") as log_file:
            process = subprocess.Popen(command, cwd=REPOSITORY, env={**os.environ, **env}, stdout=log_file,
                                       stderr=subprocess.STDOUT, pass_fds=(listener.fileno(),))
    finally:
        listener.close()
    return Instance(f"http://127.0.0.1:{port}", process, log_path)


def stop_instance(instance: Instance) -> None:
    """Stop the process (SIGQUIT: gunicorn's quick shutdown), or kill it if it does not stop."""
    instance.process.send_signal(signal.SIGQUIT)
    try:
        instance.process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        instance.process.kill()
        instance.process.wait()


def wait_until_healthy(instance: Instance, timeout: float = 60) -> None:
    """Wait for ``/healthz`` to answer 200; fail with the instance's log if it does not."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if instance.process.poll() is not None:
            raise RuntimeError(f"{instance} exited with {instance.process.returncode}:\n{instance.log()}")
        try:
            # Connections queue on the listening socket until the worker has imported the app.
            if requests.get(instance.url + "/healthz", timeout=5).status_code == 200:
                return
        except (requests.ConnectionError, requests.Timeout):
            pass
        time.sleep(0.1)
    raise RuntimeError(f"{instance} did not become healthy in {timeout}s:\n{instance.log()}")


@contextmanager
def server_instances(count: int, env: dict, log_dir: Path, workers: int = 1):
    """Start ``count`` instances sharing ``env`` (one DATABASE_URL and SECRET_KEY); yield them
    once all are healthy, and stop them afterwards."""
    with ExitStack() as stack:
        instances = []
        for i in range(count):
            instance = start_instance(env, Path(log_dir) / f"instance-{i}.log", workers)
            stack.callback(stop_instance, instance)
            instances.append(instance)
        for instance in instances:  # they start in parallel
            wait_until_healthy(instance)
        yield instances


def instance_environment(app_config: dict) -> dict:
    """The environment that makes a server process use the test app's database and secrets."""
    keys = ("DATABASE_URL", "SECRET_KEY", "KEY_ENCRYPTION_KEYS", "OAUTH2_ISSUER", "PASSWORD_HASH_METHOD",
            "LOGOUT_DELIVERY_WORKER")
    return {key: str(app_config[key]) for key in keys}
