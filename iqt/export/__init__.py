"""A trained network outside JAX: an ONNX graph of it (`onnx_graph`) and the CPU runtimes that run it (`backends`).

    python -m launch.export --workdir RUN --format onnx --output MODEL.onnx
    python -m launch.infer --model MODEL.onnx --input LF.nii.gz --output OUT.nii.gz

The runtimes are optional (`pip install .[cpu]`: onnx, onnxruntime, openvino);
without them the JAX path works as before.
"""
