"""Reader-study statistics, figures and study design for stochastic IQT.

Stands alone: imports neither JAX nor `iqt`, so it runs on any laptop with
numpy, scipy, pandas, matplotlib, nibabel and krippendorff.

Entry points:
  python -m analysis.reader_study --scores SCORES.csv --out DIR
  python -m analysis.design_study --patients P.csv --readers R.csv --seed N --out DIR
  python -m analysis.example_data --out SCORES.csv
"""
