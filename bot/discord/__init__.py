"""The Discord layer: the only package that imports discord. It turns events into plain values."""
