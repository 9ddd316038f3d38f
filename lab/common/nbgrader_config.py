"""The course's exchange, in one place: nbgrader reads this file in both labs and in every nbgrader command the
project runs (grader.release.nbgrader puts lab/common on JUPYTER_CONFIG_PATH). Set WORKSHOP_COURSE_ID and
WORKSHOP_EXCHANGE to override; on a JupyterHub, copy this file to /etc/jupyter/ with the values you chose."""

import os

c = get_config()  # noqa: F821 (provided by nbgrader when it loads this file)
c.CourseDirectory.course_id = os.environ.get("WORKSHOP_COURSE_ID", "deep-learning-workshop")
# nbgrader's own default folder, on a filesystem every student's server sees; `make release-assignment` creates it
# (mode 777) where it may, else create it once as root
c.Exchange.root = os.environ.get("WORKSHOP_EXCHANGE", "/usr/local/share/nbgrader/exchange")
