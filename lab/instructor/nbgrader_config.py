"""nbgrader in the instructor lab, which starts in the graded course (whose own nbgrader_config.py is read after this
one). Formgrader opens an exchange even when nothing is released through it, and nbgrader's default,
/usr/local/share/nbgrader/exchange, is seldom there or writable: the course keeps an empty one of its own."""

from pathlib import Path

c = get_config()  # noqa: F821 (provided by nbgrader when it loads this file)
exchange = Path("exchange").resolve()
exchange.mkdir(exist_ok=True)
c.Exchange.root = str(exchange)
