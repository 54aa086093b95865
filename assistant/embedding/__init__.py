"""The encoder (torch for documents, ONNX for questions), token vectors and the optional LLM client."""
