"""Cogs: each parses Discord objects into plain values, calls one service, renders the result."""
