"""Turn rtstyle checkpoints into deployable engines: ONNX (fp32/fp16, float or uint8 I/O),
TensorRT FP16 engines (with an engine cache) and AOTInductor packages.

Each format is an importable library function with a typed config; ``rtstyle export``
(``rtstyle/commands/export.py``) is a thin CLI over them. Modules are imported on use, so
``import rtstyle.export`` costs nothing::

    from rtstyle.export.onnx_export import OnnxExportConfig, export_onnx
    from rtstyle.export.tensorrt_build import TensorRTBuildConfig, build_tensorrt_engine
    from rtstyle.export.aoti_export import AotiExportConfig, export_aoti
"""
