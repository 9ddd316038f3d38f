"""The instructor's tools around nbgrader: release generation and grading round trips."""
