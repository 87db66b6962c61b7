"""Exporters: a Description -> a plain torch module / state_dict, or an ONNX graph."""
