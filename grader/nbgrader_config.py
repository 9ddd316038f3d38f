"""nbgrader settings: solutions/ holds the source notebooks, notebooks/ the released student versions."""

from pathlib import Path

c = get_config()  # noqa: F821 (provided by nbgrader when it loads this file)
c.CourseDirectory.root = str(Path(__file__).resolve().parent.parent)
c.CourseDirectory.source_directory = "solutions"
c.CourseDirectory.release_directory = "notebooks"
