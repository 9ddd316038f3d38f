"""The labs as real processes: `make lab` (the student lab: notebooks, Validate, TensorBoard through the server's
proxy, no instructor tools) and `make instructor-lab` (formgrader on a graded course); `make help`; the Python check."""

import contextlib
import http.client
import json
import os
import re
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path

import pytest
import websocket

from grader.grade import write_course
from grader.release import REPO

TOKEN = "workshop-test-token"
INSTRUCTOR_PLUGINS = ["@jupyter/nbgrader:assignment-list", "@jupyter/nbgrader:course-list",
                      "@jupyter/nbgrader:create-assignment", "@jupyter/nbgrader:formgrader", "@jupyter/nbgrader:menu"]
NEWS = "@jupyterlab/apputils-extension:announcements"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Lab:
    """A lab started with make, answering on `url`; `log` holds its output once it has stopped."""

    def __init__(self, url: str):
        self.url, self.log = url, ""

    def get(self, path: str) -> tuple[int, str]:
        request = urllib.request.Request(self.url + path, headers={"Authorization": f"token {TOKEN}"})
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                return response.status, response.read().decode()
        except urllib.error.HTTPError as error:
            return error.code, ""
        except (urllib.error.URLError, ConnectionError):
            return 0, ""  # not listening (yet)

    def post(self, path: str, body: dict) -> dict:
        request = urllib.request.Request(self.url + path, data=json.dumps(body).encode(), method="POST",
                                         headers={"Authorization": f"token {TOKEN}"})
        with urllib.request.urlopen(request, timeout=30) as response:
            return json.load(response)

    def landing(self) -> str:
        """Where the server's root sends a browser."""
        connection = http.client.HTTPConnection(self.url.removeprefix("http://"), timeout=30)
        connection.request("GET", "/", headers={"Authorization": f"token {TOKEN}"})
        return connection.getresponse().getheader("Location", "").split("?")[0]

    def socket(self, path: str) -> websocket.WebSocket:
        return websocket.create_connection(self.url.replace("http", "ws", 1) + path, timeout=60,
                                           header=[f"Authorization: token {TOKEN}"])


@contextlib.contextmanager
def lab(target: str, tmp: Path, *args: str):
    """`make TARGET` on a free port, with its own temporary folder (TensorBoard records what it starts there);
    stopped afterwards with every process it started, TensorBoard included."""
    port = free_port()
    server = subprocess.Popen(["make", "--no-print-directory", target, f"PORT={port}", *args], cwd=REPO,
                              env={**os.environ, "JUPYTER_TOKEN": TOKEN, "TMPDIR": str(tmp)},
                              start_new_session=True, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    running = Lab(f"http://127.0.0.1:{port}")
    try:
        deadline = time.monotonic() + 120
        while running.get("/api/status")[0] != 200:
            assert server.poll() is None, f"make {target} stopped: {server.communicate()[0][-3000:]}"
            assert time.monotonic() < deadline, f"make {target} did not answer within 120 s"
            time.sleep(0.5)
        yield running
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        running.log = server.communicate(timeout=30)[0]
        for info in (tmp / ".tensorboard-info").glob("*.info"):
            with contextlib.suppress(ProcessLookupError):
                os.kill(json.loads(info.read_text())["pid"], signal.SIGTERM)


def run_in_kernel(running: Lab, kernel: str, code: str) -> list[dict]:
    """Execute `code` over the kernel's websocket; the iopub messages it caused, up to the kernel's idle."""
    ws = running.socket(f"/api/kernels/{kernel}/channels")
    msg_id = uuid.uuid4().hex
    ws.send(json.dumps({
        "header": {"msg_id": msg_id, "msg_type": "execute_request", "session": uuid.uuid4().hex,
                   "username": "test", "version": "5.3"},
        "parent_header": {}, "metadata": {}, "channel": "shell",
        "content": {"code": code, "silent": False, "store_history": False, "user_expressions": {},
                    "allow_stdin": False, "stop_on_error": True},
    }))
    replies = []
    try:
        while True:
            message = json.loads(ws.recv())
            if message["parent_header"].get("msg_id") != msg_id or message["channel"] != "iopub":
                continue
            if message["msg_type"] == "status" and message["content"]["execution_state"] == "idle":
                return replies
            replies.append(message)
    finally:
        ws.close()


def shown(replies: list[dict]) -> str:
    """What the cell printed and displayed, as text (HTML for displays)."""
    parts = []
    for m in replies:
        content = m["content"]
        parts.append(content.get("text", "") + content.get("data", {}).get("text/html", "")
                     + "".join(content.get("traceback", [])))
    return "\n".join(parts)


def test_student_lab_validate_and_tensorboard_but_no_instructor_tools(tmp_path):
    logs = tmp_path / "logs"
    logs.mkdir()
    with lab("lab", tmp_path) as running:
        status, _ = running.get("/api/contents/01-backprop/01-backprop.ipynb?content=0")
        assert status == 200, "the student notebooks are the lab's root"
        start = "/lab/tree/START.ipynb" if (REPO / "notebooks" / "START.ipynb").exists() else "/lab"
        assert running.landing() == start, "the lab opens on the start page (once there is one)"
        for linked in ("README.md", "docs/timings.md", "workshop/profile.py"):
            assert running.get(f"/api/contents/{linked}?content=0")[0] == 200, f"{linked} should open in the lab"

        # JupyterLab's page config turns nbgrader's instructor and exchange plugins off (and Jupyter's news pop-up),
        # and Validate stays on
        _, page = running.get("/lab")
        config = json.loads(re.search(r'<script id="jupyter-config-data" type="application/json">(.*?)</script>',
                                      page, re.S).group(1))
        assert sorted(config["disabledExtensions"]) == sorted([*INSTRUCTOR_PLUGINS, NEWS])
        # and so do the server's extensions: formgrader and the exchange's lists answer nothing; Validate answers
        assert [running.get(p)[0] for p in ("/formgrader", "/assignments", "/courses")] == [404, 404, 404]
        assert running.get("/assignments/validate")[0] == 405, "Validate's handler (POST only) should be there"

        # a kernel finds the environment's programs, and %tensorboard's frame goes through the lab's proxy
        kernel = running.post("/api/kernels", {"name": "python3"})["id"]
        where = shown(run_in_kernel(running, kernel, "import shutil; print(shutil.which('tensorboard'))"))
        assert where.strip() == str(REPO / ".venv" / "bin" / "tensorboard")
        frame = shown(run_in_kernel(running, kernel, f"%load_ext tensorboard\n%tensorboard --logdir {logs}"))
        proxied = re.search(r'"(/proxy/\d+/)"', frame)
        assert proxied, f"TensorBoard's frame should point at the lab's proxy: {frame[-2000:]}"
        status, board = running.get(proxied.group(1))
        assert status == 200 and "<tb-webapp" in board, "TensorBoard's page through the lab's proxy"

        # the launcher's TensorBoard entry serves the persistent logs
        _, servers = running.get("/server-proxy/servers-info")
        entry = {s["name"]: s for s in json.loads(servers)["server_processes"]}["tensorboard"]
        assert entry["launcher_entry"]["title"] == "TensorBoard" and not entry["new_browser_tab"]

        # a terminal runs the environment's Python, not the system's
        terminal = running.post("/api/terminals", {})["name"]
        ws = running.socket(f"/terminals/websocket/{terminal}")
        ws.send(json.dumps(["stdin", "command -v python; exit\r"]))
        seen = ""
        with contextlib.suppress(websocket.WebSocketConnectionClosedException):
            while message := ws.recv():  # until the shell has exited
                kind, *text = json.loads(message)
                seen += text[0] if kind == "stdout" else ""
        assert str(REPO / ".venv" / "bin" / "python") in seen, f"the terminal's python: {seen[-500:]}"
    assert f"{running.url}{start}?token=" in running.log, "make lab prints the URL to open"
    assert "No nbgrader_config.py file found" not in running.log


def test_instructor_lab_serves_formgrader_on_the_graded_course(tmp_path):
    assignment = "01-backprop"
    write_course(tmp_path / "graded" / "course", assignment, tmp_path / "graded" / "runs")
    with lab("instructor-lab", tmp_path, f"ASSIGNMENT={assignment}", f"OUT={tmp_path / 'graded'}") as running:
        status, listing = running.get("/formgrader/api/assignments")
        assert status == 200 and [a["name"] for a in json.loads(listing)] == [assignment]
        assert running.get("/formgrader")[0] == 200
    for complaint in ("not a subdirectory of the notebook server root", "No nbgrader_config.py file found",
                      "Unwritable directory"):
        assert complaint not in running.log


def test_instructor_lab_without_a_graded_course_says_what_to_do(tmp_path):
    done = subprocess.run(["make", "--no-print-directory", "instructor-lab", f"OUT={tmp_path}"], cwd=REPO,
                          capture_output=True, text=True)
    assert done.returncode != 0 and "make grade ASSIGNMENT=01-backprop SUBMISSIONS=" in done.stderr


def test_make_help_lists_every_target():
    phony = re.search(r"^\.PHONY: (.*)$", (REPO / "Makefile").read_text(), re.M).group(1).split()
    listed = subprocess.run(["make", "--no-print-directory", "help"], cwd=REPO, capture_output=True, text=True,
                            check=True).stdout
    described = dict(re.findall(r"^  make (\S+) +(\S.*)$", listed, re.M))
    assert sorted(described) == sorted(phony)


@pytest.mark.parametrize("found", ["Python 3.10.14", None])
def test_setup_refuses_another_python_and_names_it(tmp_path, found):
    fake = tmp_path / "python3"  # left out where no Python is found
    if found:
        fake.write_text(f"#!/bin/sh\n[ \"$1\" = -V ] && echo '{found}' && exit 0\nexit 1\n")
        fake.chmod(0o755)
    done = subprocess.run(["make", "--no-print-directory", "setup", f"VENV={tmp_path / 'venv'}", f"PYTHON={fake}"],
                          cwd=REPO, capture_output=True, text=True)
    assert done.returncode != 0 and not (tmp_path / "venv").exists()
    assert "needs Python 3.11" in done.stderr and "PYTHON=python3.11" in done.stderr
    assert (found or "not found") in done.stderr
