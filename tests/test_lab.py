"""`make lab` serves JupyterLab with the student notebooks: start it on a free port, ask its REST API, stop it."""

import json
import os
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request

from grader.release import REPO


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_make_lab_serves_notebook_01():
    port, token = free_port(), "workshop-test-token"
    server = subprocess.Popen(["make", "--no-print-directory", "lab", f"PORT={port}"], cwd=REPO,
                              env={**os.environ, "JUPYTER_TOKEN": token}, start_new_session=True,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    url = f"http://127.0.0.1:{port}/api/contents/01-backprop/01-backprop.ipynb?content=0"
    request = urllib.request.Request(url, headers={"Authorization": f"token {token}"})
    try:
        deadline, answer = time.monotonic() + 120, None
        while time.monotonic() < deadline and server.poll() is None:
            try:
                with urllib.request.urlopen(request, timeout=5) as response:
                    answer = json.load(response)
                break
            except (urllib.error.URLError, ConnectionError):
                time.sleep(0.5)
        assert answer is not None, "JupyterLab did not answer within 120 s"
        assert answer["type"] == "notebook" and answer["path"] == "01-backprop/01-backprop.ipynb"
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        output = server.communicate(timeout=30)[0]
    assert f"http://127.0.0.1:{port}/lab" in output, "make lab should print the URL to open"
