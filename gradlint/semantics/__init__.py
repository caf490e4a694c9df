"""Shared PyTorch knowledge: names, layers, data paths through forward(), training loops."""
