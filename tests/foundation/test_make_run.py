"""`make run`'s scripts: ports checked before anything starts, the simulator's port followed."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def taken_port():
    """A port something listens on, on 127.0.0.1."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield sock.getsockname()[1]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def run(args: list[str], timeout: float = 60, **env: str) -> subprocess.CompletedProcess:
    """Run in its own process group, all of it killed if it outlives ``timeout``."""
    proc = subprocess.Popen(
        args,
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PY": sys.executable, **env},
        start_new_session=True,
    )
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, err = proc.communicate()
        pytest.fail(f"{args} still ran after {timeout} s:\n{out}\n{err}")
    return subprocess.CompletedProcess(args, proc.returncode, out, err)


def test_a_taken_console_port_is_named_with_how_to_choose_another(taken_port):
    done = run(
        [sys.executable, "scripts/check_ports.py"], PORT=str(taken_port), SIM_PORT=str(free_port())
    )
    assert done.returncode == 1
    assert f"Port {taken_port} on 127.0.0.1 (PORT, the console) is taken" in done.stderr
    assert (
        f"`make run PORT={taken_port + 1}`" in done.stderr and "Nothing was started." in done.stderr
    )


def test_a_taken_simulator_port_is_named_too(taken_port):
    done = run(
        [sys.executable, "scripts/check_ports.py"], PORT=str(free_port()), SIM_PORT=str(taken_port)
    )
    assert done.returncode == 1
    assert "(SIM_PORT, the OpenAI simulator) is taken" in done.stderr
    assert f"`make run SIM_PORT={taken_port + 1}`" in done.stderr


def test_free_ports_pass_and_a_bad_value_is_named():
    assert (
        run(
            [sys.executable, "scripts/check_ports.py"],
            PORT=str(free_port()),
            SIM_PORT=str(free_port()),
        ).returncode
        == 0
    )
    done = run([sys.executable, "scripts/check_ports.py"], PORT="80a", SIM_PORT=str(free_port()))
    assert done.returncode == 1 and "PORT='80a' is not a port number" in done.stderr


def test_run_console_stops_before_starting_anything_when_the_port_is_taken(taken_port):
    """It used to print "Console: http://…" while uvicorn had failed, and make said "Error 3"."""
    done = run(
        ["bash", "scripts/run-console.sh"],
        timeout=30,
        PORT=str(taken_port),
        SIM_PORT=str(free_port()),
    )
    assert done.returncode == 1
    assert "Console:" not in done.stdout
    assert f"Port {taken_port} on 127.0.0.1 (PORT, the console) is taken" in done.stderr


def ensure_env(tmp_path: Path, sim_port: str) -> tuple[str, str]:
    scripts = tmp_path / "scripts"
    scripts.mkdir(exist_ok=True)
    shutil.copy(ROOT / "scripts" / "ensure_env.py", scripts / "ensure_env.py")
    done = subprocess.run(
        [sys.executable, str(scripts / "ensure_env.py")],
        capture_output=True,
        text=True,
        env={**os.environ, "SIM_PORT": sim_port},
        check=True,
    )
    return (tmp_path / ".env").read_text(), done.stdout


def test_a_changed_sim_port_moves_the_simulator_url_and_its_allowed_origin(tmp_path):
    ensure_env(tmp_path, "8765")
    env_file = tmp_path / ".env"
    env_file.write_text(
        env_file.read_text().replace(
            "OUTBOUND_ALLOWED_ORIGINS=http://127.0.0.1:8765",
            "OUTBOUND_ALLOWED_ORIGINS=http://10.0.0.7:8000,http://127.0.0.1:8765",
        )
    )
    env, said = ensure_env(tmp_path, "8860")
    assert "\nOPENAI_SIMULATOR_URL=http://127.0.0.1:8860/v1\n" in env
    assert (
        "\nOUTBOUND_ALLOWED_ORIGINS=http://10.0.0.7:8000,http://127.0.0.1:8860\n" in env
    )  # others kept
    assert "8765" not in env and "SIM_PORT is 8860" in said
    again, said = ensure_env(tmp_path, "8860")
    assert again == env and said == ""  # nothing more to move


def test_a_simulator_url_set_by_hand_elsewhere_is_left_alone(tmp_path):
    (tmp_path / ".env").write_text(
        "OPENAI_SIMULATOR_URL=https://sim.example.com/v1\n"
        "OUTBOUND_ALLOWED_ORIGINS=https://sim.example.com\n"
    )
    env, _ = ensure_env(tmp_path, "8860")
    assert (
        env
        == "OPENAI_SIMULATOR_URL=https://sim.example.com/v1\nOUTBOUND_ALLOWED_ORIGINS=https://sim.example.com\n"
    )


def test_a_bad_sim_port_is_named(tmp_path):
    with pytest.raises(subprocess.CalledProcessError) as failed:
        ensure_env(tmp_path, "x")
    assert "SIM_PORT='x' is not a port number" in failed.value.stderr
