"""The ``onnxep`` command line."""
