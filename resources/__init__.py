"""The console's icons and style sheet. In an installed copy this folder is the package
``writeback_console.resources``; code finds it with ``importlib.resources``, never by a path of its own."""
