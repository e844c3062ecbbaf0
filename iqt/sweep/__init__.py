"""Simulator ablations: settings × seeds trained and evaluated (`launch.sweep`), and robustness curves.

`spec` loads and checks a sweep file, `runner` trains and evaluates each setting ×
seed in its own work directory, `table` summarises them (mean ± SD over seeds,
Wilcoxon signed-rank tests between settings), `robustness` evaluates trained runs
over a range of one test-time simulator value, and `figures` draws both.
"""
