"""``cnnkit bench``: timing our ops and training against cuBLAS, cuDNN (through PyTorch), NumPy and PyTorch."""
