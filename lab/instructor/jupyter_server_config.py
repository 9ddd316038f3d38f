"""The instructor lab (`make instructor-lab`): started in the course `make grade` wrote, so formgrader finds its
nbgrader_config.py and gradebook there; without an exchange, the assignment and course lists are off."""

c = get_config()  # noqa: F821 (provided by Jupyter when it loads this file)

c.ServerApp.root_dir = "."
c.LabApp.default_url = "/formgrader"
c.ServerApp.jpserver_extensions = {
    "nbgrader.server_extensions.formgrader": True,
    "nbgrader.server_extensions.validate_assignment": True,
    "nbgrader.server_extensions.assignment_list": False,
    "nbgrader.server_extensions.course_list": False,
}
