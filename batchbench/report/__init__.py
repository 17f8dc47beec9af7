"""Rendering results for people: terminal tables, markdown, plots. No TensorFlow."""
