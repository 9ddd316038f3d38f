"""nbgrader in the instructor lab, which starts in the graded course (whose own nbgrader_config.py is read after this
one). The course id and exchange come from lab/common/nbgrader_config.py. Formgrader opens the exchange even when
nothing is released through it: where the course's exchange has not been created (a single-machine class, graded
from a folder or an LMS zip), the course keeps an empty one of its own."""

from pathlib import Path

c = get_config()  # noqa: F821 (provided by nbgrader when it loads this file)
load_subconfig(str(Path(__file__).resolve().parents[1] / "common" / "nbgrader_config.py"))  # noqa: F821
if not Path(c.Exchange.root).is_dir():
    exchange = Path("exchange").resolve()
    exchange.mkdir(exist_ok=True)
    c.Exchange.root = str(exchange)
