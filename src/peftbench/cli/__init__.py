"""The `peftbench` command line: app.py assembles it from the *_commands modules; options.py declares the
options that `run`, `study` and the Python API share."""
