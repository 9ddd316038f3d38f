"""Every pytest run here (tests/ and nbval over solutions/): what passed before with the same inputs is not run
again (grader.reuse), and a closing table of seconds spent per file (per notebook, when nbval runs them)."""

from collections import defaultdict

pytest_plugins = ["grader.reuse"]


def pytest_terminal_summary(terminalreporter):
    seconds = defaultdict(float)
    for reports in terminalreporter.stats.values():
        for report in reports:
            if hasattr(report, "duration") and hasattr(report, "nodeid"):
                seconds[report.nodeid.split("::")[0]] += report.duration
    if seconds:
        terminalreporter.write_sep("-", "seconds per file")
        for name, spent in sorted(seconds.items(), key=lambda item: -item[1]):
            terminalreporter.write_line(f"{spent:8.1f}  {name}")
