"""Shipped default model files (ONNX fp32 and int8) and their manifest; data only."""
