"""The instructor's wing: release the lab to students and grade their submissions.

The grader treats the lab as data: it reads the source notebook and copies the release
files, and never imports the lab's helper modules into its own process.
"""
