"""Preparing a real low-field scan for enhancement, on a CPU, with nothing downloaded.

The steps the published study ran with SPM12, ANTs and MATLAB, in the order
`iqt.prepare.pipeline` runs them:

- `dicom`: a DICOM series (or a NIfTI file) → a `Volume` with its world geometry;
- `bias`: N4 bias-field correction inside a head mask (SimpleITK);
- `brain`: brain extraction by thresholds and morphology (SimpleITK, scipy), or a given mask;
- `crosstalk`: T1w cross-talk correction, each slice's histogram matched to a central slice;
- `spacing`: the voxel-size check against a training run, and in-plane resampling to its voxels.
"""
