"""The command layer: one module per ``edge-anpr`` sub-command that prints.

``cli.py`` parses the arguments and calls one ``*_main`` here (or in ``edge_anpr.lab`` for
``eval`` and ``bench``); these modules turn results into lines on stdout and exit codes.
Library modules below them return values and log; they never print.
"""
