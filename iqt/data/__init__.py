"""Data: NIfTI I/O, the embedded MNI152 template, intensity normalisation."""
