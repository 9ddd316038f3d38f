"""Keep TensorFlow's start-up messages out of the notebooks, and let its real errors through.

TensorFlow's libraries log a few lines while they load, before TF_CPP_MIN_LOG_LEVEL takes effect: absl's
"All log messages before absl::InitializeLog() ..." notice, "oneDNN custom operations are on", "Could not find
cuda drivers on your machine" and, once the devices are listed, "failed call to cuInit" on a machine without a
GPU. No environment variable stops them (TF_ENABLE_ONEDNN_OPTS would change the numerics, not only the message).
Importing the workshop package installs an import hook: while TensorFlow is first imported (and lists its devices),
whatever is written to the process's stderr is caught; absl's notice and the log records below the
TF_CPP_MIN_LOG_LEVEL threshold (2 unless set: info and warnings) are dropped, and everything else (errors, lines
that are not absl's) is written back to stderr. The cuInit error is dropped only where TensorFlow has just said
that the machine has no CUDA driver. TF_CPP_MIN_LOG_LEVEL=0 shows everything. Keras imported before the workshop
package loads TensorFlow before the hook exists: the notebooks import workshop first.
"""

import importlib.abc
import os
import re
import sys
import tempfile
from contextlib import contextmanager

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # TensorFlow's own setting; read when it loads

LEVELS = "IWEF"  # absl's severities: info, warning, error, fatal (TF_CPP_MIN_LOG_LEVEL 0..3 hides those below)
# an absl record: severity, mmdd, time (before absl is initialised: seconds since 1970), thread, file:line]
RECORD = re.compile(r"^([IWEF])\d{4} \d\d:\d\d:\d+(\.\d+)? +\d+ [^ \]]+:\d+\] ")
ABSL_NOTICE = "WARNING: All log messages before absl::InitializeLog() is called are written to STDERR"
NO_DRIVER = "Could not find cuda drivers on your machine"
NO_CUDA = "failed call to cuInit"


def min_level() -> int:
    """TF_CPP_MIN_LOG_LEVEL as a number (0 when it is not one)."""
    value = os.environ.get("TF_CPP_MIN_LOG_LEVEL", "0").strip()
    return int(value) if value.isdigit() else 0


def shown(text: str, level: int) -> str:
    """What of TensorFlow's start-up stderr `text` to show at TF_CPP_MIN_LOG_LEVEL `level`."""
    if level <= 0:
        return text
    kept = []
    no_driver = NO_DRIVER in text
    for line in text.splitlines(keepends=True):  # a line that is not absl's is kept, whatever comes before it
        record = RECORD.match(line)
        if line.startswith(ABSL_NOTICE):
            continue
        if record and LEVELS.index(record.group(1)) < level:
            continue
        if record and no_driver and NO_CUDA in line:
            continue  # the same news as "Could not find cuda drivers", told as an error
        kept.append(line)
    return "".join(kept)


@contextmanager
def filtered_stderr():
    """Catch what is written to file descriptor 2 (C++ code included) and write back only what `shown` keeps.
    Where there is no stderr or no temporary file to catch it in, nothing is caught."""
    for stream in (sys.stdout, sys.stderr):
        stream.flush()
    try:
        caught = tempfile.TemporaryFile()
    except OSError:
        yield
        return
    with caught:
        try:
            saved = os.dup(2)
        except OSError:
            yield
            return
        os.dup2(caught.fileno(), 2)
        try:
            yield
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            caught.seek(0)
            text = shown(caught.read().decode(errors="replace"), min_level())
            if text:
                sys.stderr.write(text)
                sys.stderr.flush()


class QuietLoader(importlib.abc.Loader):
    """TensorFlow's own loader, run inside `filtered_stderr`; it also lists the devices there (where cuInit
    complains on a machine without a GPU). Anything else is asked of the original loader."""

    def __init__(self, loader, finder):
        self.loader, self.finder = loader, finder

    def create_module(self, spec):
        return self.loader.create_module(spec)

    def exec_module(self, module):
        if self.finder in sys.meta_path:  # the one import that loads TensorFlow; later ones find it loaded
            sys.meta_path.remove(self.finder)
        with filtered_stderr():
            self.loader.exec_module(module)
            try:
                module.config.list_physical_devices()
            except Exception:  # noqa: BLE001 - a broken device set-up shows when the notebook uses it
                pass

    def __getattr__(self, name):
        return getattr(self.loader, name)


class QuietTensorFlow(importlib.abc.MetaPathFinder):
    """Finds `tensorflow` with the other finders and wraps its loader in QuietLoader, until it is loaded: a probe
    such as importlib.util.find_spec("tensorflow") (Keras makes one on the torch backend) loads nothing, so the
    finder stays for the import that follows."""

    def find_spec(self, name, path=None, target=None):
        if name != "tensorflow":
            return None
        for finder in sys.meta_path:
            if finder is self:
                continue
            spec = finder.find_spec(name, path, target) if hasattr(finder, "find_spec") else None
            if spec is not None:
                if spec.loader is not None:
                    spec.loader = QuietLoader(spec.loader, self)
                return spec
        return None


def install() -> None:
    """Quiet TensorFlow's first import, unless it is imported already (then it is too late)."""
    if "tensorflow" not in sys.modules and not any(isinstance(f, QuietTensorFlow) for f in sys.meta_path):
        sys.meta_path.insert(0, QuietTensorFlow())
