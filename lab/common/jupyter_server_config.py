"""What both labs share: the environment's programs first on PATH (kernels, terminals, TensorBoard) and TensorBoard
through the server's proxy, for `%tensorboard` in a notebook and as "TensorBoard" in the launcher."""

import os
import sys
from pathlib import Path

c = get_config()  # noqa: F821 (provided by Jupyter when it loads this file)
REPO = Path(__file__).resolve().parents[2]

# The server runs the environment's Python; kernels and terminals inherit its PATH, so `tensorboard`, `pip` and
# `python` there are the environment's even when it was never activated.
os.environ["WORKSHOP_LAB_BIN"] = str(Path(sys.executable).parent)
os.environ["PATH"] = os.pathsep.join([os.environ["WORKSHOP_LAB_BIN"], os.environ.get("PATH", "")])
# Terminals: an interactive shell, not the login shell Jupyter starts otherwise (/etc/profile resets PATH); bash reads
# bashrc here, which puts the environment back ahead of what ~/.bashrc adds.
shell = os.environ.get("SHELL") or "/bin/sh"
c.ServerApp.terminado_settings = {
    "shell_command": [shell, "--rcfile", str(Path(__file__).with_name("bashrc"))] if shell.endswith("bash") else [shell]
}

# TensorBoard's notebook magic points its frame at this URL (through jupyter-server-proxy, which takes the lab's
# login) instead of at localhost:PORT, which a browser away from the server (JupyterHub) cannot reach.
base_url = os.environ.get("JUPYTERHUB_SERVICE_PREFIX", "/")
os.environ.setdefault("TENSORBOARD_PROXY_URL", f"{base_url}proxy/%PORT%/")

# The logs the notebooks write (workshop.log_dir), kept between sessions; "TensorBoard" in the launcher serves them.
log_dir = Path(os.environ.get("WORKSHOP_LOG_DIR", REPO / "data" / "logs")).resolve()
os.environ["WORKSHOP_LOG_DIR"] = str(log_dir)  # absolute: kernels start in the notebooks' own folders
log_dir.mkdir(parents=True, exist_ok=True)
c.ServerProxy.servers = {
    "tensorboard": {
        "command": ["tensorboard", "--logdir", str(log_dir), "--port", "{port}", "--host", "127.0.0.1"],
        "timeout": 60,
        "launcher_entry": {"title": "TensorBoard"},
        "new_browser_tab": False,  # a tab of the lab
    }
}
