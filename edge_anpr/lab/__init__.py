"""The lab: benchmarks, evaluations, the stand-in recognizer, CPU accounting, data splits and
progress display.

The appliance never imports this package (an import-linter contract in ``make test`` holds
it); it imports the appliance to measure it. ``edge-anpr eval``, ``eval-crops`` and ``bench``
dispatch here, and ``edge_anpr.train`` uses its data splits.
"""
