"""Globally and Locally Consistent Image Completion (Iizuka, Simo-Serra, Ishikawa; SIGGRAPH 2017)."""
